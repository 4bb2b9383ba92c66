"""The ``trainboard`` command (also ``python -m trainboard``).

Environment variables are read here, at the edge, and passed down as arguments.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from trainboard.transport import DEFAULT_SERVER

DEFAULT_DB = "sqlite:///./trainboard.db"


def _server_default() -> str:
    return os.environ.get("TRAINBOARD_SERVER") or DEFAULT_SERVER


def _split_host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise SystemExit(f"trainboard: expected HOST:PORT, got {address!r}")
    return host, int(port)


def cmd_server(args: argparse.Namespace) -> int:
    try:
        from trainboard_server.server import make_server, serve
        from trainboard_server.sql_store import SqlStore
    except ImportError as exc:
        print(
            f"trainboard server needs the server extra: pip install 'trainboard[server]' ({exc})",
            file=sys.stderr,
        )
        return 2
    store = SqlStore.from_url(args.db)
    try:
        handle = make_server(store, host=args.host, port=args.port)
    except OSError as exc:
        print(f"trainboard: {exc}", file=sys.stderr)
        store.close()
        return 1
    from sqlalchemy.engine import make_url

    database = make_url(args.db).render_as_string(hide_password=True)
    print(f"Trainboard server listening on {handle.address} (database {database})", flush=True)
    try:
        serve(handle)
    finally:
        store.close()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from trainboard.demo import run_demo, summary_table

    if args.wait > 0 and not _wait_for_server(args.server, args.wait):
        print(f"trainboard: no server answers at {args.server}", file=sys.stderr)
        return 1
    run_demo(args.server, experiment=args.experiment, steps=args.steps)
    print(summary_table(args.server, args.experiment), flush=True)
    return 0


def _wait_for_server(address: str, seconds: float) -> bool:
    import time

    from trainboard.reader import Reader

    deadline = time.monotonic() + seconds
    with Reader(address) as reader:
        while time.monotonic() < deadline:
            if reader.healthy(timeout=max(0.1, min(2.0, deadline - time.monotonic()))):
                return True
            time.sleep(0.1)
    return False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trainboard", description="Trainboard: a small, fast experiment tracker."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)

    server = sub.add_parser("server", help="run the gRPC server")
    server.add_argument(
        "--db",
        default=os.environ.get("TRAINBOARD_DB") or DEFAULT_DB,
        help="SQLAlchemy URL: sqlite:///path or postgresql://user@host/db "
        "(default: $TRAINBOARD_DB or %(default)s)",
    )
    server.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    server.add_argument("--port", type=int, default=6009, help="port (default %(default)s)")
    server.set_defaults(func=cmd_server)

    demo = sub.add_parser("demo", help="train the softmax demo (three learning rates)")
    demo.add_argument(
        "--server", default=_server_default(), help="HOST:PORT of the server (default %(default)s)"
    )
    demo.add_argument("--experiment", default="digits", help="experiment (default %(default)s)")
    demo.add_argument("--steps", type=int, default=300, help="training steps per run")
    demo.add_argument(
        "--wait", type=float, default=0, help="wait up to this many seconds for the server"
    )
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
