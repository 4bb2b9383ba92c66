"""The ``trainboard`` command (also ``python -m trainboard``).

Environment variables are read here, at the edge, and passed down as arguments.

The package holds the command line and what only it needs, apart from the SDK
(``import trainboard`` imports none of it):

- ``trainboard.cli`` (here): the parser, ``main`` and the ``server``, ``sync``,
  ``demo``, ``ui`` and ``up`` commands;
- ``trainboard.cli.housekeeping``: ``trainboard runs …`` and ``trainboard experiments …``;
- ``trainboard.cli.processes``: the child processes of ``trainboard ui`` and ``trainboard up``;
- ``trainboard.cli.demo``: the demo trainer of ``trainboard demo``.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from trainboard.cli import housekeeping
from trainboard.cli.processes import Service, http_ok, port_open, run_services
from trainboard.defaults import DEFAULT_HOST, DEFAULT_PORT, DEFAULT_SERVER

DEFAULT_DB = "sqlite:///./trainboard.db"
# The server's --crashed-after default (trainboard_server.sql_store.DEFAULT_CRASHED_AFTER;
# not imported from there: the client package works without the server extra).
DEFAULT_CRASHED_AFTER = 300.0
DEFAULT_UI_PORT = 8501
UI_EXTRA_MODULES = ("streamlit", "plotly", "pandas")


def _server_default() -> str:
    return os.environ.get("TRAINBOARD_SERVER") or DEFAULT_SERVER


def _add_server_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        default=_server_default(),
        help="HOST:PORT of the server, or several comma-separated (default %(default)s)",
    )


def _host_ports(address: str) -> list[tuple[str, int]]:
    """The (host, port) pairs of ``HOST:PORT`` or several comma-separated."""
    from trainboard.transport import resolve_server

    try:
        resolve_server(address)
    except ValueError as exc:
        raise SystemExit(f"trainboard: {exc}") from exc
    pairs = []
    for part in address.split(","):
        host, _, port = part.strip().rpartition(":")
        pairs.append((host.strip("[]"), int(port)))
    return pairs


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
    from trainboard_server.auth import TokensFileError, load_tokens
    from trainboard_server.server import TlsCredentials

    if bool(args.tls_cert) != bool(args.tls_key):
        print("trainboard: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    try:
        tokens = load_tokens(args.tokens_file) if args.tokens_file else None
        tls = TlsCredentials.from_files(args.tls_cert, args.tls_key) if args.tls_cert else None
    except (TokensFileError, OSError) as exc:
        print(f"trainboard: {exc}", file=sys.stderr)
        return 2
    if args.crashed_after < 0:
        print("trainboard: --crashed-after must be >= 0 seconds", file=sys.stderr)
        return 2
    store = SqlStore.from_url(args.db, crashed_after=args.crashed_after or None)
    try:
        handle = make_server(store, host=args.host, port=args.port, tokens=tokens, tls=tls)
    except OSError as exc:
        print(f"trainboard: {exc}", file=sys.stderr)
        store.close()
        return 1
    from sqlalchemy.engine import make_url

    database = make_url(args.db).render_as_string(hide_password=True)
    security = [
        "TLS" if tls else "no TLS",
        f"tokens required ({len(tokens.roles)} in {args.tokens_file})" if tokens else "no tokens",
    ]
    print(
        f"Trainboard server listening on {handle.address} "
        f"(database {database}; {', '.join(security)})",
        flush=True,
    )
    try:
        serve(handle)
    finally:
        store.close()
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    from trainboard.errors import TrainboardError
    from trainboard.spool import default_spool_dir, sync

    target = Path(args.path) if args.path else default_spool_dir()
    try:
        results = sync(target, server=args.server)
    except (TrainboardError, ValueError, OSError) as exc:
        print(f"trainboard: sync stopped: {exc}", file=sys.stderr)
        return 1
    for result in results:
        note = " (a damaged tail was skipped)" if result.truncated else ""
        print(
            f"sent {result.path.name}: {result.batches} batches to run {result.run_id}, "
            f"{result.duplicates} already stored{note}"
        )
    if not results:
        print(f"nothing to send in {target}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from trainboard.cli.demo import run_demo, summary_table

    if args.wait > 0 and not _wait_for_server(args.server, args.wait):
        print(f"trainboard: no server answers at {args.server}", file=sys.stderr)
        return 1
    run_demo(args.server, experiment=args.experiment, steps=args.steps)
    print(summary_table(args.server, args.experiment), flush=True)
    return 0


def _wait_for_server(address: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not _server_ready(address):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _server_ready(address: str) -> bool:
    """True when the server at ``address`` answers its gRPC health check."""
    from trainboard.reader import Reader

    # A plain connect first: a gRPC channel that found the port closed backs off
    # for a second or more before it tries again.
    if not any(port_open(host, port) for host, port in _host_ports(address)):
        return False
    with Reader(address, timeout=5.0) as reader:
        return reader.healthy(timeout=2.0)


# ---------------------------------------------------------------------- dashboard


class MissingExtra(RuntimeError):
    """The dashboard cannot start: a package it needs is not installed."""


def dashboard_app() -> Path:
    """The dashboard's entry point, ``app.py`` of the installed ``trainboard_ui``."""
    missing = [name for name in UI_EXTRA_MODULES if importlib.util.find_spec(name) is None]
    spec = importlib.util.find_spec("trainboard_ui")
    locations = list(spec.submodule_search_locations or ()) if spec is not None else []
    if not locations:
        missing.append("trainboard_ui")
    if missing:
        raise MissingExtra(
            f"the dashboard needs the ui extra ({', '.join(missing)} not installed): "
            "pip install 'trainboard[ui]'"
        )
    app = Path(locations[0]) / "app.py"
    if not app.is_file():
        raise MissingExtra(f"{app} is missing: reinstall with pip install 'trainboard[ui]'")
    return app


def streamlit_command(app: Path, *, server: str, host: str, port: int) -> list[str]:
    """``streamlit run`` of the dashboard against ``server``, through
    ``python -m trainboard_ui`` (which imports the dashboard while Streamlit starts)."""
    return [
        sys.executable,
        "-m",
        "trainboard_ui",
        "run",
        str(app),
        "--server.port",
        str(port),
        "--server.address",
        host,
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        # No "Deploy" button or developer menu: this is a tool, not an app in the making.
        "--client.toolbarMode",
        "minimal",
        "--",
        "--server",
        server,
    ]


def dashboard_url(host: str, port: int) -> str:
    return f"http://{host}:{port}"


def _dashboard_service(app: Path, *, server: str, host: str, port: int) -> Service:
    # A dashboard bound to every interface still answers on loopback.
    probe_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return Service(
        "dashboard",
        streamlit_command(app, server=server, host=host, port=port),
        ready=functools.partial(http_ok, f"{dashboard_url(probe_host, port)}/_stcore/health"),
    )


def cmd_ui(args: argparse.Namespace) -> int:
    try:
        app = dashboard_app()
    except MissingExtra as exc:
        print(f"trainboard: {exc}", file=sys.stderr)
        return 2
    _host_ports(args.server)  # a bad address fails here, not in the dashboard

    def announce() -> None:
        url = dashboard_url(args.host, args.port)
        print(f"Trainboard dashboard: {url} (server {args.server}). Ctrl-C stops it.", flush=True)

    service = _dashboard_service(app, server=args.server, host=args.host, port=args.port)
    return run_services([service], announce)


def server_command(*, db: str, host: str, port: int) -> list[str]:
    """``python -m trainboard server`` (this interpreter) on ``db``, ``host:port``."""
    return [
        *(sys.executable, "-m", "trainboard", "server"),
        *("--db", db, "--host", host, "--port", str(port)),
    ]


def cmd_up(args: argparse.Namespace) -> int:
    try:
        app = dashboard_app()
    except MissingExtra as exc:
        print(f"trainboard: {exc}", file=sys.stderr)
        return 2
    host = DEFAULT_HOST
    address = f"{host}:{args.port}"
    server = Service(
        "server",
        server_command(db=args.db, host=host, port=args.port),
        ready=functools.partial(_server_ready, address),
    )
    dashboard = _dashboard_service(app, server=address, host=host, port=args.ui_port)

    def announce() -> None:
        print(
            f"Trainboard is up\n"
            f"  server:    {address}\n"
            f"  dashboard: {dashboard_url(host, args.ui_port)}\n"
            "Ctrl-C stops both.",
            flush=True,
        )

    return run_services([server, dashboard], announce)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trainboard", description="Trainboard: a small, fast experiment tracker."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)

    db_default = os.environ.get("TRAINBOARD_DB") or DEFAULT_DB
    server = sub.add_parser("server", help="run the gRPC server")
    server.add_argument(
        "--db",
        default=db_default,
        help="SQLAlchemy URL: sqlite:///path or postgresql://user@host/db "
        "(default: $TRAINBOARD_DB or %(default)s)",
    )
    server.add_argument(
        "--host", default=DEFAULT_HOST, help="address to bind (default %(default)s)"
    )
    server.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default %(default)s)")
    server.add_argument(
        "--tokens-file",
        default=os.environ.get("TRAINBOARD_TOKENS_FILE"),
        help="require tokens: a file of 'write TOKEN' / 'read TOKEN' lines "
        "(default: $TRAINBOARD_TOKENS_FILE; none: no tokens needed)",
    )
    server.add_argument("--tls-cert", help="serve TLS with this PEM certificate (chain)")
    server.add_argument("--tls-key", help="the PEM private key of --tls-cert")
    server.add_argument(
        "--crashed-after",
        type=float,
        default=DEFAULT_CRASHED_AFTER,
        metavar="SECONDS",
        help="list a running run as crashed when nothing (no write, no heartbeat) reached "
        "it for this long (default %(default)g; 0: never)",
    )
    server.set_defaults(func=cmd_server)

    sync_parser = sub.add_parser(
        "sync", help="send what clients left in the spool while the server was unreachable"
    )
    sync_parser.add_argument(
        "path",
        nargs="?",
        help="a spool file or folder (default: $TRAINBOARD_SPOOL_DIR or ~/.trainboard/spool)",
    )
    _add_server_argument(sync_parser)
    sync_parser.set_defaults(func=cmd_sync)

    demo = sub.add_parser("demo", help="train the softmax demo (three learning rates)")
    _add_server_argument(demo)
    demo.add_argument("--experiment", default="digits", help="experiment (default %(default)s)")
    demo.add_argument("--steps", type=int, default=300, help="training steps per run")
    demo.add_argument(
        "--wait", type=float, default=0, help="wait up to this many seconds for the server"
    )
    demo.set_defaults(func=cmd_demo)

    ui = sub.add_parser("ui", help="run the dashboard (Streamlit) against a server")
    _add_server_argument(ui)
    ui.add_argument(
        "--port", type=int, default=DEFAULT_UI_PORT, help="dashboard port (default %(default)s)"
    )
    ui.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    ui.set_defaults(func=cmd_ui)

    up = sub.add_parser(
        "up", help="run a server on SQLite and the dashboard together; Ctrl-C stops both"
    )
    up.add_argument(
        "--db",
        default=db_default,
        help="SQLAlchemy URL (default: $TRAINBOARD_DB or %(default)s)",
    )
    up.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="server port (default %(default)s)"
    )
    up.add_argument(
        "--ui-port",
        type=int,
        default=DEFAULT_UI_PORT,
        help="dashboard port (default %(default)s)",
    )
    up.set_defaults(func=cmd_up)

    housekeeping.add_parsers(sub, _server_default())
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    return int(args.func(args))
