"""Helpers shared by the benchmarks: options, interleaved rounds, medians, the table
printer, PASS/FAIL verdicts, a Trainboard server subprocess on a free loopback port,
and peak resident memory.

Why interleaved rounds: the speed of a shared machine drifts (by 2x within minutes
here), so a baseline measured a minute before the product says little. Every round
runs each case once, the order reversed every other round (A B, B A, A B, ...), and
a ratio is taken per round, between neighbours, before the median is taken.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import numpy as np

#: Where ``python -m bench.<name>`` must be run from (the repository root).
REPO_ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------- options


def make_parser(doc: str | None, *, default_rounds: int) -> argparse.ArgumentParser:
    """The flags every benchmark takes; a benchmark may add its own."""
    summary = (doc or "").strip().splitlines()[0] if doc else None
    parser = argparse.ArgumentParser(description=summary)
    parser.add_argument(
        "--quick", action="store_true", help="small sizes and few rounds (a smoke test)"
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 1 when a target is missed"
    )
    parser.add_argument("--verbose", action="store_true", help="also print every round's figure")
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help=f"interleaved rounds (default {default_rounds}, 2 with --quick)",
    )
    return parser


def rounds_for(args: argparse.Namespace, default: int) -> int:
    """The number of rounds: ``--rounds``, else 2 with ``--quick``, else ``default``."""
    rounds = args.rounds if args.rounds is not None else (2 if args.quick else default)
    if rounds < 1:
        raise SystemExit("--rounds must be at least 1")
    return int(rounds)


def machine_facts() -> str:
    """One line that says what machine and interpreter the figures come from."""
    cpus = os.cpu_count() or 0
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = cpus
    cpu_text = f"{cpus} CPUs" if usable == cpus else f"{cpus} CPUs ({usable} usable)"
    return (
        f"{cpu_text}, {platform.machine()}, Python {platform.python_version()} "
        f"({platform.python_implementation()}), {platform.system()} {platform.release()}, "
        f"numpy {np.__version__}"
    )


def print_header(title: str, *, rounds: int, quick: bool, sizes: str) -> None:
    print(f"== {title}", flush=True)
    print(f"machine: {machine_facts()}")
    mode = "quick (smoke test sizes)" if quick else "full"
    print(
        f"mode: {mode}; {sizes}; {rounds} interleaved rounds (order reversed every other round)",
        flush=True,
    )


class StolenTime:
    """The share of this (virtual) machine's CPU time that its hypervisor gave to
    other guests between ``start()`` and ``share()`` ("steal" in ``/proc/stat``):
    on a shared host every case slows down by it, unevenly, so a run with a large
    share has noisier rounds. ``None`` where ``/proc/stat`` has no steal column."""

    def __init__(self) -> None:
        self._start: tuple[int, int] | None = None

    @staticmethod
    def _read() -> tuple[int, int] | None:
        try:
            with open("/proc/stat", encoding="ascii") as stat:
                fields = stat.readline().split()
        except OSError:
            return None
        if len(fields) < 9 or fields[0] != "cpu":
            return None
        ticks = [int(field) for field in fields[1:9]]  # user .. steal
        return sum(ticks), ticks[7]

    def start(self) -> StolenTime:
        self._start = self._read()
        return self

    def share(self) -> float | None:
        end = self._read()
        if self._start is None or end is None or end[0] <= self._start[0]:
            return None
        return (end[1] - self._start[1]) / (end[0] - self._start[0])

    def describe(self) -> str:
        share = self.share()
        if share is None:
            return "CPU time stolen by the hypervisor: unknown"
        return f"CPU time stolen by the hypervisor during the run: {share:.0%}"


# ---------------------------------------------------------------------- rounds


def interleave(
    rounds: int, cases: Sequence[tuple[str, Callable[[], float]]]
) -> dict[str, list[float]]:
    """Runs every case once per round, in alternating order, and collects what
    each returns (a duration, or a rate) per case, round by round."""
    results: dict[str, list[float]] = {name: [] for name, _ in cases}
    for number in range(rounds):
        order = cases if number % 2 == 0 else list(reversed(cases))
        for name, measure in order:
            results[name].append(float(measure()))
    return results


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def paired_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """The median of the per-round ratios (rounds paired, so drift between rounds cancels)."""
    if len(numerators) != len(denominators) or not numerators:
        raise ValueError("paired_ratio needs two equally long, non-empty sequences")
    return median(
        [n / d if d > 0 else float("inf") for n, d in zip(numerators, denominators, strict=True)]
    )


# ---------------------------------------------------------------------- formatting


def fmt_seconds(seconds: float) -> str:
    """A duration with a unit that keeps 3-4 significant digits."""
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return str(seconds)
    magnitude = abs(seconds)
    if magnitude >= 1.0:
        return f"{seconds:.3f} s"
    if magnitude >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    if magnitude >= 1e-6:
        return f"{seconds * 1e6:.2f} µs"
    return f"{seconds * 1e9:.1f} ns"


def fmt_rate(per_second: float, unit: str) -> str:
    """A rate such as ``1.23 M points/s``."""
    if per_second >= 1e6:
        return f"{per_second / 1e6:.2f} M {unit}/s"
    if per_second >= 1e3:
        return f"{per_second / 1e3:.1f} k {unit}/s"
    return f"{per_second:.1f} {unit}/s"


def fmt_ratio(ratio: float) -> str:
    return f"{ratio:.1f}x" if ratio < 1000 else f"{ratio:.0f}x"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A plain-text table: the first column left-aligned, the others right-aligned."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [cell.rjust(widths[i + 1]) for i, cell in enumerate(cells[1:])]
        return "  ".join([first, *rest]).rstrip()

    print()
    print(line(headers))
    print(line(["-" * w for w in widths]))
    for row in rows:
        print(line(row))
    print(flush=True)


def timing_rows(results: dict[str, list[float]], fmt: Callable[[float], str]) -> list[list[str]]:
    """Table rows ``case, median, min, max`` for each case."""
    return [
        [name, fmt(median(values)), fmt(min(values)), fmt(max(values))]
        for name, values in results.items()
    ]


def print_rounds(results: dict[str, list[float]], fmt: Callable[[float], str]) -> None:
    """Every round's figure per case, in the order measured (``--verbose``)."""
    width = max(len(name) for name in results)
    for name, values in results.items():
        print(f"rounds  {name.ljust(width)}  {'  '.join(fmt(v) for v in values)}")
    print(flush=True)


# ---------------------------------------------------------------------- verdicts


@dataclass
class Verdicts:
    """PASS/FAIL lines against the targets, and the exit status they imply."""

    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def ratio(self, label: str, ratio: float, target: float, *, of_medians: float) -> bool:
        """Prints ``ratio <label>: <r>x (target >= <t>x) PASS|FAIL``; ``ratio`` is the
        median of the per-round ratios, ``of_medians`` the ratio of the medians."""
        ok = ratio >= target
        print(
            f"ratio {label}: {fmt_ratio(ratio)}  (target >= {fmt_ratio(target)}; "
            f"ratio of medians {fmt_ratio(of_medians)})  {'PASS' if ok else 'FAIL'}",
            flush=True,
        )
        if not ok:
            self.failed.append(label)
        return ok

    def info_ratio(self, label: str, ratio: float, *, of_medians: float) -> None:
        """Prints ``ratio <label>: <r>x`` for a ratio that has no target."""
        print(
            f"ratio {label}: {fmt_ratio(ratio)}  (no target; "
            f"ratio of medians {fmt_ratio(of_medians)})",
            flush=True,
        )

    def check(self, label: str, ok: bool, detail: str) -> bool:
        """Prints ``check <label>: <detail> PASS|FAIL`` for a target that is not a ratio."""
        print(f"check {label}: {detail}  {'PASS' if ok else 'FAIL'}", flush=True)
        if not ok:
            self.failed.append(label)
        return ok

    def skip(self, label: str, reason: str) -> None:
        print(f"skip {label}: {reason}  SKIP", flush=True)
        self.skipped.append(label)

    def exit_code(self, strict: bool) -> int:
        if self.failed:
            print(f"missed: {', '.join(self.failed)}", flush=True)
        elif not self.skipped:
            print("all targets met", flush=True)
        return 1 if strict and (self.failed or self.skipped) else 0


# ---------------------------------------------------------------------- memory


def peak_rss_mib() -> float:
    """Peak resident memory of this process, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def process_peak_rss_mib(pid: int) -> float | None:
    """Peak resident memory of a live process, in MiB (Linux only; else None)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def print_memory(server: ServerProcess | None = None) -> None:
    parts = [f"benchmark process {peak_rss_mib():.0f} MiB"]
    if server is not None and server.peak_rss_mib is not None:
        parts.append(f"server process {server.peak_rss_mib:.0f} MiB")
    print(f"peak RSS: {', '.join(parts)}", flush=True)


# ---------------------------------------------------------------------- server


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerError(RuntimeError):
    """The server subprocess did not start or did not become healthy."""


class ServerProcess:
    """``python -m trainboard server --db URL`` on a free loopback port.

    ``start()`` returns once the server answers its health check; ``stop()`` sends
    SIGTERM and waits. Also a context manager. ``peak_rss_mib`` is the server's peak
    resident memory, read just before it was last stopped (or now, while it runs).
    """

    def __init__(self, db_url: str, log_path: Path, *, startup_timeout: float = 60.0) -> None:
        self.db_url = db_url
        self.log_path = log_path
        self.startup_timeout = startup_timeout
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._last_peak_rss: float | None = None

    @property
    def address(self) -> str:
        if self._process is None:
            raise ServerError("the server is not running")
        return f"127.0.0.1:{self.port}"

    @property
    def peak_rss_mib(self) -> float | None:
        if self._process is not None and self._process.poll() is None:
            return process_peak_rss_mib(self._process.pid)
        return self._last_peak_rss

    def start(self, *, same_port: bool = False) -> None:
        """Starts the server on a free port, or on the port it had before
        (``same_port``: clients keep their address across a restart)."""
        if self._process is not None:
            raise ServerError("the server is already running")
        if same_port and self.port:
            if self._launch():
                return
            raise ServerError(f"port {self.port} is taken; log:\n{self._log_tail()}")
        # Another process may take the free port between the probe and the bind;
        # the server then exits at once and a new port is tried.
        for _attempt in range(3):
            self.port = free_port()
            if self._launch():
                return
        raise ServerError(f"the server did not start on a free port; log:\n{self._log_tail()}")

    def _launch(self) -> bool:
        from trainboard.reader import Reader

        command = [
            sys.executable,
            "-m",
            "trainboard",
            "server",
            "--db",
            self.db_url,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        with open(self.log_path, "ab") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
        address = f"127.0.0.1:{self.port}"
        deadline = time.monotonic() + self.startup_timeout
        # Wait for the port with plain sockets first: a gRPC channel that failed to
        # connect backs off for a second or more before it tries again.
        while time.monotonic() < deadline:
            if process.poll() is not None:
                if "address in use" in self._log_tail().lower():
                    return False
                raise ServerError(
                    f"the server exited with status {process.returncode}; log:\n{self._log_tail()}"
                )
            if _port_open(self.port):
                break
            time.sleep(0.01)
        with Reader(address, timeout=5.0) as reader:
            while time.monotonic() < deadline and process.poll() is None:
                if reader.healthy(timeout=max(0.1, min(5.0, deadline - time.monotonic()))):
                    self._process = process
                    return True
                time.sleep(0.01)
        _terminate(process)
        raise ServerError(
            f"the server at {address} was not healthy within {self.startup_timeout:g} s; "
            f"log:\n{self._log_tail()}"
        )

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        self._last_peak_rss = process_peak_rss_mib(process.pid)
        status = _terminate(process)
        if status not in (0, -signal.SIGTERM):
            print(f"warning: the server exited with status {status}; log:\n{self._log_tail()}")

    def kill(self) -> None:
        """SIGKILL: the server gets no chance to finish what it was doing."""
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def _log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def stop_group(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """Stops a child started in its own process group, and whatever it started:
    SIGTERM to the group, SIGKILL after ``grace`` seconds; then SIGKILL to what is
    left of the group (children that outlived their leader)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _terminate(process: subprocess.Popen[bytes], grace: float = 20.0) -> int:
    """SIGTERM, then SIGKILL if it has not exited within ``grace`` seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return int(process.returncode)
