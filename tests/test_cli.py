"""The `trainboard` command: the server, the dashboard (`ui`) and both together (`up`)
start, answer, and stop cleanly."""

from __future__ import annotations

import ast
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from server_process import free_port, wait_healthy
from up_process import UpProcess, alive, descendants

import trainboard


def test_python_dash_m_trainboard_shows_the_commands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "trainboard", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("server", "demo"):
        assert command in out.stdout


def test_importing_the_sdk_imports_no_part_of_the_command() -> None:
    """``import trainboard`` (what a trainer does) loads the library only: not the
    command line, its child processes, its housekeeping commands or the demo."""
    code = "import sys, trainboard; print(sorted(m for m in sys.modules if 'trainboard' in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(ast.literal_eval(out.stdout))
    assert "trainboard.client" in loaded  # the check sees the SDK's modules
    assert not {m for m in loaded if m == "trainboard.cli" or m.startswith("trainboard.cli.")}


def test_server_command_serves_a_sqlite_file_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
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
        assert wait_healthy(address), "server did not become healthy"
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


# ---------------------------------------------------------------------- ui and up


def test_ui_and_up_have_help() -> None:
    for command, flags in (("ui", ("--server", "--port", "--host")), ("up", ("--db", "--ui-port"))):
        out = subprocess.run(
            [sys.executable, "-m", "trainboard", command, "--help"],
            capture_output=True,
            text=True,
            check=True,
        )
        for flag in flags:
            assert flag in out.stdout, out.stdout


def test_ui_runs_the_installed_app_with_streamlit() -> None:
    import trainboard_ui
    from trainboard.cli import dashboard_app, streamlit_command

    app = dashboard_app()
    assert app == Path(trainboard_ui.__file__).parent / "app.py"
    command = streamlit_command(app, server="10.0.0.1:7000", host="127.0.0.1", port=8600)
    assert command[:5] == [sys.executable, "-m", "trainboard_ui", "run", str(app)]
    options = command[5 : command.index("--")]
    assert dict(zip(options[::2], options[1::2], strict=True)) == {
        "--server.port": "8600",
        "--server.address": "127.0.0.1",
        "--server.headless": "true",
        "--browser.gatherUsageStats": "false",
        "--client.toolbarMode": "minimal",
    }
    assert command[command.index("--") :] == ["--", "--server", "10.0.0.1:7000"]


def test_ui_server_address_comes_from_trainboard_server(monkeypatch: pytest.MonkeyPatch) -> None:
    from trainboard.cli import build_parser

    monkeypatch.setenv("TRAINBOARD_SERVER", "example.org:6100")
    args = build_parser().parse_args(["ui"])
    assert (args.server, args.host, args.port) == ("example.org:6100", "127.0.0.1", 8501)


def test_ui_without_the_ui_extra_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    from trainboard import cli

    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> object:
        return None if name == "streamlit" else real_find_spec(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    for command in (["ui"], ["up"]):
        assert cli.main(command) == 2
        error = capsys.readouterr().err
        assert "streamlit not installed" in error
        assert "pip install 'trainboard[ui]'" in error


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the Linux /proc table")
def test_up_serves_both_and_sigint_leaves_no_process_behind(tmp_path: Path) -> None:
    from trainboard.cli.processes import http_ok

    with UpProcess(tmp_path) as up:
        children = descendants(up.pid)
        assert len(children) >= 2, f"expected a server and a dashboard process: {up.log()}"
        assert wait_healthy(up.server_address, 5.0)
        assert http_ok(f"{up.dashboard_url}/_stcore/health")
        log = up.log()
        assert f"server:    {up.server_address}" in log
        assert f"dashboard: {up.dashboard_url}" in log
        assert up.interrupt() == 0, up.log()
    survivors = [pid for pid in children if alive(pid)]
    assert not survivors, f"processes left behind: {survivors}"
    assert (tmp_path / "trainboard.db").exists()


def test_up_stops_everything_when_the_server_cannot_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [
                *(sys.executable, "-m", "trainboard", "up"),
                *("--db", f"sqlite:///{tmp_path / 'x.db'}", "--port", str(port)),
                *("--ui-port", str(free_port())),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "cannot listen" in done.stderr
    assert "the server exited with status 1" in done.stderr
