"""Child processes for ``trainboard ui`` and ``trainboard up``.

Each child runs in its own process group, so a Ctrl-C in the terminal reaches only
the ``trainboard`` process, which then stops the children in order: SIGTERM to each
group, a grace period, SIGKILL to what is left. Nothing is left running behind.
Standard library only: it runs without the server or the ui extra (the Makefile's
``demo`` target and the compose file's dashboard healthcheck import ``http_ok``).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType, TracebackType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class ChildFailed(RuntimeError):
    """A child exited on its own, or did not become ready in time."""


class StopRequest:
    """While entered, SIGINT and SIGTERM set ``event`` instead of interrupting."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._previous: dict[int, object] = {}

    def is_set(self) -> bool:
        return self.event.is_set()

    def __enter__(self) -> StopRequest:
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.event.set()


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid


@dataclass
class Children:
    """Started children, stopped together on leaving the ``with`` block."""

    grace: float = 10.0
    started: list[Child] = field(default_factory=list)

    def start(self, name: str, command: Sequence[str]) -> Child:
        # process_group=0: the child leads a new group, which stop() signals whole.
        child = Child(name, subprocess.Popen(list(command), process_group=0))
        self.started.append(child)
        return child

    def first_exited(self) -> Child | None:
        return next((c for c in self.started if c.process.poll() is not None), None)

    def stop(self) -> None:
        """SIGTERM to every group, then SIGKILL to the groups still there after
        ``grace`` seconds; returns once every child has been reaped."""
        running = [c for c in self.started if c.process.poll() is None]
        for child in running:
            _signal_group(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        for child in running:
            try:
                child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(child.pid, signal.SIGKILL)
                child.process.wait()
        for child in self.started:
            _signal_group(child.pid, signal.SIGKILL)  # strays its leader left behind

    def __enter__(self) -> Children:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group is empty: all have exited
        os.killpg(pgid, sig)


@dataclass(frozen=True)
class Service:
    """A child to start, how to tell it is ready, and how long it may take."""

    name: str
    command: Sequence[str]
    ready: Callable[[], bool]
    startup_timeout: float = 60.0


def run_services(services: Sequence[Service], on_ready: Callable[[], None]) -> int:
    """Starts the services all at once (on two cores the dashboard's start-up and the
    server's overlap; the dashboard copes with a server that is not up yet), waits
    until each is ready, calls ``on_ready``; then runs until SIGINT or SIGTERM
    (status 0) or until a service exits by itself (status 1). Every child is stopped
    on return."""
    with StopRequest() as stop, Children() as children:
        try:
            for service in services:
                children.start(service.name, service.command)
            for service in services:
                if not _wait_ready(service, children, stop):
                    break
            else:
                on_ready()
                _wait_for_stop(children, stop)
        except ChildFailed as exc:
            print(f"trainboard: {exc}; stopping", file=sys.stderr, flush=True)
            return 1
        print("trainboard: stopping", file=sys.stderr, flush=True)
    return 0


def _wait_ready(service: Service, children: Children, stop: StopRequest) -> bool:
    """True once ``service`` is ready, False if a stop was requested meanwhile."""
    deadline = time.monotonic() + service.startup_timeout
    while not service.ready():
        _check_running(children)
        if stop.is_set():
            return False
        if time.monotonic() > deadline:
            raise ChildFailed(
                f"the {service.name} was not ready within {service.startup_timeout:g} s"
            )
        stop.event.wait(0.05)
    return True


def _wait_for_stop(children: Children, stop: StopRequest) -> None:
    # Woken at once by a signal; a child's exit is noticed within the interval.
    while not stop.event.wait(0.25):
        _check_running(children)


def _check_running(children: Children) -> None:
    exited = children.first_exited()
    if exited is not None:
        raise ChildFailed(f"the {exited.name} exited with status {exited.process.returncode}")


# ---------------------------------------------------------------------- readiness


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# Loopback health checks must never go through an HTTP proxy from the environment.
_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """True when ``GET url`` answers 200."""
    try:
        with _NO_PROXY_OPENER.open(url, timeout=timeout) as response:
            return int(response.status) == 200
    except (OSError, http.client.HTTPException):
        return False
