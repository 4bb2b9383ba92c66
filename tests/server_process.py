"""`python -m trainboard server` as a subprocess that tests can kill and restart."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import trainboard


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(address: str, seconds: float = 60.0) -> bool:
    """Polls the health check until it answers SERVING or the deadline passes."""
    deadline = time.monotonic() + seconds
    with trainboard.Reader(address) as reader:
        while time.monotonic() < deadline:
            if reader.healthy(timeout=1.0):
                return True
            time.sleep(0.05)
    return False


class ServerProcess:
    """One server on a fixed port and database, started and killed on demand."""

    def __init__(self, db_url: str, log_dir: Path, port: int | None = None) -> None:
        self.db_url = db_url
        self.port = port or free_port()
        self.log_dir = log_dir
        self._process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.starts += 1
        log = open(self.log_dir / f"server-{self.port}-{self.starts}.log", "wb")  # noqa: SIM115
        command = [sys.executable, "-m", "trainboard", "server", "--db", self.db_url]
        self._process = subprocess.Popen(
            [*command, "--port", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        if not wait_healthy(self.address):
            raise RuntimeError(f"server on {self.address} did not become healthy")

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, no chance to finish a transaction."""
        if self._process is not None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait(timeout=30)
            self._process = None

    def stop(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
