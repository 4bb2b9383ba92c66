"""`python -m trainboard up` as a subprocess for tests, and the Linux process table
(/proc) to check that stopping it leaves no process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from server_process import free_port

READY_LINE = "Trainboard is up"


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (children, their children, ...), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited while we looked
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, exited but not yet reaped, does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class UpProcess:
    """``trainboard up`` on free loopback ports over a SQLite file in ``workdir``;
    its output goes to ``workdir/up.log``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.ui_port = free_port()
        self.log_path = workdir / "up.log"
        self.db_url = f"sqlite:///{workdir / 'trainboard.db'}"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    @property
    def server_address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.ui_port}"

    def start(self, timeout: float = 120.0) -> None:
        """Starts it and returns once it says both services are up."""
        command = [
            *(sys.executable, "-m", "trainboard", "up", "--db", self.db_url),
            *("--port", str(self.port), "--ui-port", str(self.ui_port)),
        ]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
            )
        deadline = time.monotonic() + timeout
        while READY_LINE not in self.log():
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"trainboard up exited with {self.process.returncode}:\n{self.log()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"trainboard up was not up within {timeout:g} s:\n{self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def interrupt(self, timeout: float = 30.0) -> int:
        """SIGINT, as Ctrl-C sends it; returns the exit status."""
        assert self.process is not None, "not started"
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=timeout)

    def __enter__(self) -> UpProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # After a failed test: take down whatever is still running.
        if self.process is None or self.process.poll() is not None:
            return
        left = descendants(self.process.pid)
        self.process.kill()
        self.process.wait()
        for pid in left:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
