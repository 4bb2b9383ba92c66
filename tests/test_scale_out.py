"""Several servers on one PostgreSQL: servers keep no state outside the database, so
the SDK may spread its calls over them (``server="host:p1,host:p2"``) and every point
is stored exactly once, whichever server took it, even when one dies mid-run.

Each test runs two ``python -m trainboard server`` processes on the session's
PostgreSQL database and several clients (threads, each its own ``Client`` and
channel) that all write into one run: a shared series ``loss`` at interleaved steps
(writer i takes steps i, i+N, i+2N, ...: concurrent writes to one series through
different servers and connections) and a series of their own, ``w<i>``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from server_process import ServerProcess

import trainboard

EXPERIMENT = "scale-out"
RUN = "shared"
WRITERS = 4
STEPS_PER_FLUSH = 100  # one write batch of 2 x 100 points per flush
DEADLINE_S = 120.0


def value_of(step: int, writer: int) -> float:
    """What a writer logs at a step: recoverable, so doubled or mixed points show."""
    return step * 2.0 + writer * 0.25


# ---------------------------------------------------------------------- helpers


class Progress:
    """Steps the writers have had confirmed as stored; waited on without sleeping."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self.steps = 0

    def add(self, steps: int) -> None:
        with self._condition:
            self.steps += steps
            self._condition.notify_all()

    def wait_for(self, steps: int, timeout: float = DEADLINE_S) -> bool:
        with self._condition:
            return self._condition.wait_for(lambda: self.steps >= steps, timeout)


class Writer(threading.Thread):
    """One client: logs the shared ``loss`` and its own ``w<i>`` at its steps,
    flushing every ``STEPS_PER_FLUSH`` steps, until ``steps`` are logged or ``stop``
    is set; then closes. ``logged`` counts its steps; ``errors`` what went wrong."""

    def __init__(
        self,
        address: str,
        index: int,
        spool_dir: Path,
        progress: Progress,
        *,
        steps: int | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        super().__init__(name=f"writer-{index}", daemon=True)
        self.address = address
        self.index = index
        self.spool_dir = spool_dir
        self.progress = progress
        self.limit = steps
        self.stop = stop or threading.Event()
        self.logged = 0
        self.errors: list[str] = []

    def run(self) -> None:
        try:
            client = trainboard.Client(
                EXPERIMENT,
                RUN,
                server=self.address,
                flush_interval=0.05,
                spill_after=60.0,  # the other server is up: retrying must succeed first
                spool_dir=self.spool_dir,
                resume=True,  # every writer logs into the one run
            )
            own = f"w{self.index}"
            while not self.stop.is_set() and (self.limit is None or self.logged < self.limit):
                for _ in range(STEPS_PER_FLUSH):
                    step = self.index + WRITERS * self.logged
                    value = value_of(step, self.index)
                    client.log_scalars({"loss": value, own: value}, step=step)
                    self.logged += 1
                if not client.flush(timeout=DEADLINE_S):
                    self.errors.append(f"flush() after {self.logged} steps did not confirm")
                    break
                self.progress.add(STEPS_PER_FLUSH)
            if not client.close(timeout=DEADLINE_S):
                self.errors.append("close() did not confirm everything")
        except Exception as exc:  # every failure is a finding
            self.errors.append(repr(exc))


class CountingProxy:
    """A TCP forwarder in front of one server that counts the bytes clients send
    through it: what a load balancer would see of each server's share."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self.bytes_in = 0
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self._listener.accept()
            except OSError:  # closed
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                downstream.close()
                continue
            with self._lock:
                self._sockets += [downstream, upstream]
            threading.Thread(
                target=self._pump, args=(downstream, upstream, True), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(upstream, downstream, False), daemon=True
            ).start()

    def _pump(self, source: socket.socket, sink: socket.socket, count: bool) -> None:
        # A reset or closed socket (a server killed, a client gone) ends the pump.
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if count:
                    with self._lock:
                        self.bytes_in += len(data)
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def two_servers(postgres_url: str, tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two server processes on one (emptied) PostgreSQL database."""
    servers = (ServerProcess(postgres_url, tmp_path), ServerProcess(postgres_url, tmp_path))
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


def join_all(writers: list[Writer]) -> None:
    for writer in writers:
        writer.join(DEADLINE_S)
        assert not writer.is_alive(), f"{writer.name} did not finish"
        assert not writer.errors, f"{writer.name}: {writer.errors}"


def read_everything(address: str) -> dict[str, trainboard.ScalarSeries]:
    """Every series of the shared run, at full resolution, read through ``address``."""
    with trainboard.Reader(address) as reader:
        run = reader.run(EXPERIMENT, RUN)
        return {tag.name: reader.scalars(run.id, tag.name) for tag in reader.tags(run.id)}


def assert_every_point_once(series: dict[str, trainboard.ScalarSeries], logged: list[int]) -> None:
    expected = np.sort(
        np.concatenate([i + WRITERS * np.arange(n, dtype=np.int64) for i, n in enumerate(logged)])
    )
    shared = series["loss"]
    assert shared.total == sum(logged)
    np.testing.assert_array_equal(shared.steps, expected)
    np.testing.assert_array_equal(
        shared.values, shared.steps * 2.0 + (shared.steps % WRITERS) * 0.25
    )
    for i, n in enumerate(logged):
        own = series[f"w{i}"]
        steps = i + WRITERS * np.arange(n, dtype=np.int64)
        assert own.total == n
        np.testing.assert_array_equal(own.steps, steps)
        np.testing.assert_array_equal(own.values, steps * 2.0 + i * 0.25)


def stored_chunk_points(postgres_url: str) -> dict[str, int]:
    """Points per tag as stored, counted in the chunks themselves: a batch stored
    twice (a retry applied again) would show here even where reads hide it."""
    import psycopg

    url = postgres_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT s.tag, sum(c.count) FROM scalar_chunks c JOIN series s ON s.id = c.series_id "
            "GROUP BY s.tag"
        ).fetchall()
    return {str(tag): int(count) for tag, count in rows}


def assert_same_data(
    first: dict[str, trainboard.ScalarSeries], second: dict[str, trainboard.ScalarSeries]
) -> None:
    assert sorted(first) == sorted(second)
    for tag, series in first.items():
        np.testing.assert_array_equal(series.steps, second[tag].steps)
        np.testing.assert_array_equal(series.values, second[tag].values)
        np.testing.assert_array_equal(series.wall_times, second[tag].wall_times)


def start_writers(
    address: str,
    spool_dir: Path,
    progress: Progress,
    *,
    steps: int | None = None,
    stop: threading.Event | None = None,
) -> list[Writer]:
    writers = [
        Writer(address, i, spool_dir, progress, steps=steps, stop=stop) for i in range(WRITERS)
    ]
    for writer in writers:
        writer.start()
    return writers


def spooled(spool_dir: Path) -> list[Path]:
    """Spool files the clients left (none while a server was reachable)."""
    return sorted(spool_dir.iterdir()) if spool_dir.exists() else []


# ---------------------------------------------------------------------- tests


def test_clients_spread_over_two_servers_store_every_point_once(
    two_servers: tuple[ServerProcess, ServerProcess], postgres_url: str, tmp_path: Path
) -> None:
    first, second = two_servers
    proxies = (CountingProxy(first.port), CountingProxy(second.port))
    try:
        progress = Progress()
        address = ",".join(proxy.address for proxy in proxies)
        writers = start_writers(address, tmp_path / "spool", progress, steps=2_000)
        join_all(writers)
        shares = [proxy.bytes_in for proxy in proxies]
    finally:
        for proxy in proxies:
            proxy.close()

    # 4 writers x 20 batches of ~5 KB: round-robin gives each server about half.
    assert min(shares) > 0.2 * sum(shares), f"bytes sent to each server: {shares}"
    logged = [writer.logged for writer in writers]
    through_first = read_everything(first.address)
    assert_every_point_once(through_first, logged)
    assert_same_data(through_first, read_everything(second.address))
    stored = stored_chunk_points(postgres_url)
    assert stored == {"loss": sum(logged), **{f"w{i}": n for i, n in enumerate(logged)}}
    assert spooled(tmp_path / "spool") == []


def test_clients_carry_on_through_the_other_server_when_one_is_killed(
    two_servers: tuple[ServerProcess, ServerProcess], postgres_url: str, tmp_path: Path
) -> None:
    first, second = two_servers
    progress = Progress()
    stop = threading.Event()
    address = f"{first.address},{second.address}"
    writers = start_writers(address, tmp_path / "spool", progress, stop=stop)
    try:
        # Mid-run: the writers are logging and flushing in a loop when it dies.
        assert progress.wait_for(WRITERS * 5 * STEPS_PER_FLUSH), "no progress through both"
        first.kill()
        at_kill = progress.steps
        assert progress.wait_for(at_kill + WRITERS * 5 * STEPS_PER_FLUSH), (
            "no progress through the surviving server"
        )
    finally:
        stop.set()
    join_all(writers)

    logged = [writer.logged for writer in writers]
    through_second = read_everything(second.address)
    assert_every_point_once(through_second, logged)
    stored = stored_chunk_points(postgres_url)
    assert stored == {"loss": sum(logged), **{f"w{i}": n for i, n in enumerate(logged)}}
    assert spooled(tmp_path / "spool") == []
    first.start()  # same port: a Reader pointed at it alone sees the same data
    assert_same_data(read_everything(first.address), through_second)
