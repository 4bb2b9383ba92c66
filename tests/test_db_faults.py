"""A failing database is a condition the client waits out, never a loss.

Real faults, no mocks: PostgreSQL refusing connections (and its backends
terminated), a SQLite database on a tmpfs that fills up, a SQLite file made
immutable, and a SQLite file whose directory is moved away or deleted. In each,
the server answers UNAVAILABLE (never INTERNAL), its health check says
NOT_SERVING while the database is unusable and SERVING once it is usable again,
writes work again without a restart, and a client logging through the fault has
every point stored exactly once.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import trainboard
from trainboard import wire
from trainboard.types import ScalarColumns, WriteBatch
from trainboard.v1 import trainboard_pb2 as pb
from trainboard.v1 import trainboard_pb2_grpc as pb_grpc
from trainboard_server.server import SERVICE_NAMES, ServerHandle, make_server
from trainboard_server.sql_store import SqlStore

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
OK = grpc.StatusCode.OK
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE

# ------------------------------------------------------------------ helpers


@contextmanager
def serving(url: str) -> Iterator[ServerHandle]:
    """An in-process server on a free port over the database at ``url``."""
    store = SqlStore.from_url(url)
    handle = make_server(store, host="127.0.0.1", port=0)
    handle.start()
    try:
        yield handle
    finally:
        handle.stop(grace=None)
        store.close()


class RawClient:
    """Bare gRPC calls, to see each answer's status code (the SDK retries them)."""

    def __init__(self, address: str, experiment: str = "raw") -> None:
        self._channel = grpc.insecure_channel(address)
        self._write = pb_grpc.WriteServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._client_id = uuid.uuid4().hex
        self._sequence = 0
        started = self._write.StartRun(
            pb.StartRunRequest(experiment=experiment, run="r", wall_time=time.time()), timeout=10
        )
        self.run_id = int(started.run.id)
        self.acknowledged: list[int] = []  # steps the server said it stored
        self._next_step = 0

    def write(self, points: int = 1, tag: str = "raw") -> grpc.StatusCode:
        """Sends one new batch of ``points`` points; its status code."""
        self._sequence += 1
        steps = np.arange(self._next_step, self._next_step + points, dtype=np.int64)
        self._next_step += points
        columns = ScalarColumns(tag, steps, np.full(points, time.time()), _value(steps, 7))
        batch = WriteBatch(self._client_id, self._sequence, self.run_id, scalars=(columns,))
        try:
            self._write.WriteBatch(wire.write_batch_to_pb(batch), timeout=10)
        except grpc.RpcError as exc:
            return exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
        if tag == "raw":
            self.acknowledged.extend(int(s) for s in steps)
        return OK

    def health(self) -> set[int]:
        """The statuses answered for "" and for each service name."""
        return {
            self._health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5).status
            for name in ("", *SERVICE_NAMES)
        }

    def wait_for_health(self, status: int, seconds: float = 10.0) -> float:
        """Seconds until every name answers ``status``; fails after ``seconds``."""
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            if self.health() == {status}:
                return time.monotonic() - started
            time.sleep(0.05)
        raise AssertionError(f"health stayed {self.health()}, not {status}")

    def close(self) -> None:
        self._channel.close()


def _value(steps: np.ndarray, tag: int) -> np.ndarray:
    values: np.ndarray = np.sin(steps * 0.001 + tag) * 1000.0 + steps
    return values


class Trainer(threading.Thread):
    """A ``trainboard.Client`` logging two tags, step after step, until stopped."""

    def __init__(self, address: str, experiment: str, spool_dir: Path) -> None:
        super().__init__(daemon=True)
        self.experiment = experiment
        self.client = trainboard.Client(
            experiment,
            "r",
            server=address,
            timeout=5.0,
            spill_after=1.0,
            flush_interval=0.1,
            spool_dir=spool_dir,
        )
        self.steps = 0
        self.longest = 0.0  # the longest logging call, in seconds
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            step = np.array([self.steps])
            values = {"a": float(_value(step, 0)[0]), "b": float(_value(step, 1)[0])}
            started = time.perf_counter()
            self.client.log_scalars(values, step=self.steps)
            self.longest = max(self.longest, time.perf_counter() - started)
            self.steps += 1
            if self.steps % 10 == 0:
                time.sleep(0.01)  # about 1000 steps a second

    def finish(self) -> None:
        """Stops logging, closes the client (everything stored) and checks the run."""
        self._halt.set()
        self.join(timeout=10)
        assert self.client.close(timeout=60) is True, "the client could not store everything"
        # The server runs in this process and shares its interpreter lock, so this
        # bound is loose; what it rules out is a call held for seconds by the outage.
        print(f"longest logging call: {self.longest * 1000:.1f} ms")
        assert self.longest < 0.25, f"a logging call held the trainer {self.longest:.3f} s"


def _check_stored_once(address: str, experiment: str, steps: int) -> None:
    """Every step 0..steps-1 of tags a and b stored exactly once, with its value."""
    with trainboard.Reader(address) as reader:
        (run,) = reader.runs(experiment)
        for index, tag in enumerate(("a", "b")):
            series = reader.scalars(run.id, tag)
            assert series.total == steps, f"{tag}: {series.total} points stored of {steps}"
            np.testing.assert_array_equal(series.steps, np.arange(steps))
            np.testing.assert_array_equal(series.values, _value(np.arange(steps), index))


def _check_acknowledged_stored(address: str, raw: RawClient) -> None:
    with trainboard.Reader(address) as reader:
        series = reader.scalars(raw.run_id, "raw")
    assert set(raw.acknowledged) <= {int(s) for s in series.steps}


def _internal_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Calls the server answered INTERNAL: the servicer logs each with its traceback."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "trainboard.server" and r.levelno >= logging.ERROR and r.exc_info
    ]


def _wait_until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(0.02)


# ------------------------------------------------------------------ PostgreSQL


@pytest.fixture
def scratch_postgres(postgres_database: str) -> Iterator[tuple[str, str, str]]:
    """A database of its own (it is taken offline): (URL, name, admin DSN)."""
    import psycopg
    from sqlalchemy.engine import make_url

    session_url = make_url(postgres_database)
    admin = session_url.set(drivername="postgresql", database="postgres")
    admin_dsn = admin.render_as_string(hide_password=False)
    name = f"trainboard_faults_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield session_url.set(database=name).render_as_string(hide_password=False), name, admin_dsn
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def refusing_connections(admin_dsn: str, name: str) -> Iterator[None]:
    """PostgreSQL refuses new connections to ``name`` and ends those it had."""
    import psycopg

    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        )
        try:
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


def test_postgres_refusing_connections_answers_unavailable_and_recovers_without_restart(
    scratch_postgres: tuple[str, str, str], caplog: pytest.LogCaptureFixture
) -> None:
    url, name, admin_dsn = scratch_postgres
    with serving(url) as handle:
        raw = RawClient(handle.address)
        assert raw.write() == OK
        with refusing_connections(admin_dsn, name):
            assert raw.write() == UNAVAILABLE
            assert raw.health() == {NOT_SERVING}
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:
                assert raw.write() == UNAVAILABLE
                time.sleep(0.2)
            assert raw.health() == {NOT_SERVING}
            back = time.monotonic()
        recovered = raw.wait_for_health(SERVING)
        assert raw.write() == OK  # the same server, no restart
        first_write = time.monotonic() - back
        for _ in range(20):
            assert raw.write() == OK
        _check_acknowledged_stored(handle.address, raw)
        raw.close()
    assert _internal_errors(caplog) == []
    print(f"postgres: SERVING {recovered:.2f} s and a write OK {first_write:.2f} s after")


def test_postgres_outage_loses_and_doubles_no_point(
    scratch_postgres: tuple[str, str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url, name, admin_dsn = scratch_postgres
    caplog.set_level(logging.INFO)
    with serving(url) as handle:
        trainer = Trainer(handle.address, "pg-outage", tmp_path / "spool")
        trainer.start()
        _wait_until(lambda: trainer.steps > 500)
        with refusing_connections(admin_dsn, name):
            time.sleep(3.0)
        _wait_until(lambda: trainer.steps > 500 + 4000)
        trainer.finish()
        _check_stored_once(handle.address, "pg-outage", trainer.steps)
    assert "the database is unavailable" in caplog.text  # the outage was seen
    assert _internal_errors(caplog) == []


# ------------------------------------------------------------------ SQLite: disk full


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 12 MiB tmpfs (mounting needs root, or the test is skipped)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill up: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _fill(path: Path) -> None:
    """Appends to ``path`` until its file system has no byte left."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for size in (1 << 20, 1 << 12, 1):
            block = b"\0" * size
            try:
                while True:
                    os.write(fd, block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    finally:
        os.close(fd)


def test_sqlite_disk_full_answers_unavailable_and_loses_nothing(
    small_disk: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = small_disk / "trainboard.db"
    with serving(f"sqlite:///{db}") as handle:
        raw = RawClient(handle.address)
        trainer = Trainer(handle.address, "full", tmp_path / "spool")
        trainer.start()
        _wait_until(lambda: trainer.steps > 500)
        # An empty WAL, then a full disk: a large write must grow the WAL, and cannot.
        with closing(sqlite3.connect(db, timeout=5)) as checkpoint:
            checkpoint.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        _fill(small_disk / "filler")
        assert raw.write(points=300_000, tag="big") == UNAVAILABLE
        time.sleep(1.5)  # the trainer goes on logging; its batches wait
        os.remove(small_disk / "filler")
        recovered = raw.wait_for_health(SERVING)
        print(f"disk full: SERVING {recovered:.2f} s after the fault ended")
        assert raw.write() == OK
        _wait_until(lambda: trainer.steps > 4000)
        trainer.finish()
        _check_stored_once(handle.address, "full", trainer.steps)
        _check_acknowledged_stored(handle.address, raw)
        raw.close()
    assert "database or disk is full" in caplog.text
    assert _internal_errors(caplog) == []


# ------------------------------------------------------------------ SQLite: read-only file


def _read_concurrently(address: str, experiment: str) -> None:
    def read(_: int) -> None:
        with trainboard.Reader(address) as reader:
            (run,) = reader.runs(experiment)
            reader.scalars(run.id, "a")

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(read, range(64)))


def _chattr(flag: str, *paths: Path) -> None:
    subprocess.run(["chattr", flag, *map(str, paths)], check=True, capture_output=True)


@pytest.fixture
def immutable_supported(tmp_path: Path) -> None:
    """Root ignores permission bits: only the immutable attribute stops it writing."""
    probe = tmp_path / "probe"
    probe.touch()
    try:
        _chattr("+i", probe)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot make a file immutable here (chattr +i): {exc}")
    try:
        with open(probe, "a") as handle:
            handle.write("x")
    except PermissionError:
        pass
    else:
        pytest.skip("an immutable file is still writable here")
    finally:
        _chattr("-i", probe)


def test_sqlite_read_only_file_answers_unavailable_and_recovers_without_restart(
    immutable_supported: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "trainboard.db"
    locked = [db, Path(f"{db}-wal")]  # not -shm: SQLite maps it, and a write to it would fault
    with serving(f"sqlite:///{db}") as handle:
        raw = RawClient(handle.address)
        trainer = Trainer(handle.address, "read-only", tmp_path / "spool")
        trainer.start()
        _wait_until(lambda: trainer.steps > 500)
        _chattr("+i", *locked)
        try:
            assert raw.write() == UNAVAILABLE
            assert raw.health() == {NOT_SERVING}
            # Reads still work, and concurrent ones open connections meanwhile, which
            # SQLite opens read-only: they must not stay pooled for later writes.
            _read_concurrently(handle.address, "read-only")
            time.sleep(1.0)
            assert raw.write() == UNAVAILABLE
            assert raw.health() == {NOT_SERVING}
        finally:
            _chattr("-i", *locked)
        recovered = raw.wait_for_health(SERVING)
        print(f"read-only: SERVING {recovered:.2f} s after the fault ended")
        for _ in range(20):
            assert raw.write() == OK
        _wait_until(lambda: trainer.steps > 4000)
        trainer.finish()
        _check_stored_once(handle.address, "read-only", trainer.steps)
        _check_acknowledged_stored(handle.address, raw)
        raw.close()
    assert _internal_errors(caplog) == []


# ------------------------------------------------------------------ SQLite: file deleted


def test_sqlite_file_moved_away_is_refused_until_it_is_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "data"
    db = directory / "trainboard.db"
    with serving(f"sqlite:///{db}") as handle:
        raw = RawClient(handle.address)
        trainer = Trainer(handle.address, "moved", tmp_path / "spool")
        trainer.start()
        _wait_until(lambda: trainer.steps > 500)
        directory.rename(tmp_path / "elsewhere")
        assert raw.write() == UNAVAILABLE
        assert raw.health() == {NOT_SERVING}
        time.sleep(1.5)  # the trainer goes on logging; nothing is acknowledged
        assert raw.write() == UNAVAILABLE
        assert raw.health() == {NOT_SERVING}
        assert not directory.exists()  # no new database was made in its place
        (tmp_path / "elsewhere").rename(directory)
        recovered = raw.wait_for_health(SERVING)
        print(f"moved back: SERVING {recovered:.2f} s after the fault ended")
        assert raw.write() == OK
        _wait_until(lambda: trainer.steps > 4000)
        trainer.finish()
        _check_stored_once(handle.address, "moved", trainer.steps)
        _check_acknowledged_stored(handle.address, raw)
        raw.close()
    assert "was deleted" in caplog.text
    assert _internal_errors(caplog) == []


def test_sqlite_file_deleted_stays_refused_until_a_database_is_restored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "data"
    db = directory / "trainboard.db"
    backup = tmp_path / "backup.db"
    with serving(f"sqlite:///{db}") as handle:
        raw = RawClient(handle.address)
        for _ in range(5):
            assert raw.write() == OK
        with closing(sqlite3.connect(db)) as source, closing(sqlite3.connect(backup)) as target:
            source.backup(target)
        shutil.rmtree(directory)
        assert raw.write() == UNAVAILABLE
        assert raw.health() == {NOT_SERVING}
        # Something that is not a Trainboard database at the path is not taken.
        directory.mkdir()
        db.write_bytes(b"not a database")
        time.sleep(1.5)
        assert raw.write() == UNAVAILABLE
        assert raw.health() == {NOT_SERVING}
        # A restored copy is: a new file, adopted without a restart.
        db.unlink()
        shutil.copyfile(backup, db)
        recovered = raw.wait_for_health(SERVING)
        print(f"restored: SERVING {recovered:.2f} s after the fault ended")
        assert raw.write() == OK
        _check_acknowledged_stored(handle.address, raw)
        raw.close()
    assert "took the database file now at" in caplog.text
    assert _internal_errors(caplog) == []


def test_health_follows_the_database_on_a_server_that_was_never_unhealthy(
    tmp_path: Path,
) -> None:
    with serving(f"sqlite:///{tmp_path / 'ok.db'}") as handle:
        raw = RawClient(handle.address)
        assert raw.health() == {SERVING}
        assert raw.write() == OK
        raw.close()
