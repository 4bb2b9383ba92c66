"""The `trainboard` command: the server starts, answers, and stops cleanly."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import trainboard


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(address: str, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    with trainboard.Reader(address) as reader:
        while time.monotonic() < deadline:
            if reader.healthy(timeout=1.0):
                return True
    return False


def test_python_dash_m_trainboard_shows_the_commands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "trainboard", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("server", "demo"):
        assert command in out.stdout


def test_server_command_serves_a_sqlite_file_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    db = tmp_path / "cli.db"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trainboard",
            "server",
            "--db",
            f"sqlite:///{db}",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        address = f"127.0.0.1:{port}"
        assert _wait_healthy(address), "server did not become healthy"
        with trainboard.Client("cli", "r1", server=address) as client:
            client.log_scalar("loss", 0.5, step=1)
        assert trainboard.Reader(address).experiments() == ["cli"]
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
    assert server.returncode == 0, output
    assert f"listening on 127.0.0.1:{port}" in output
    assert db.exists()


def test_server_command_reports_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "trainboard",
                "server",
                "--db",
                f"sqlite:///{tmp_path / 'x.db'}",
                "--port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert out.returncode == 1
    assert "cannot listen" in out.stderr


def test_database_url_comes_from_trainboard_db(tmp_path: Path) -> None:
    import os

    from trainboard.cli import build_parser

    os.environ["TRAINBOARD_DB"] = f"sqlite:///{tmp_path / 'env.db'}"
    try:
        args = build_parser().parse_args(["server"])
    finally:
        del os.environ["TRAINBOARD_DB"]
    assert args.db == f"sqlite:///{tmp_path / 'env.db'}"
    assert (args.host, args.port) == ("127.0.0.1", 6009)
