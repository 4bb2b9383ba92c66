"""Nothing lost, nothing doubled: retries, the spool, and a server killed mid-run."""

from __future__ import annotations

import logging
import math
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from server_process import ServerProcess, free_port

import trainboard
from trainboard.spool import read_spool, spool_files
from trainboard.transport import RemoteStore
from trainboard_server.server import make_server
from trainboard_server.sql_store import SqlStore


def _value(step: int, tag: int) -> float:
    return math.sin(step * 0.001 + tag) * 1000.0 + step


def _check_everything_stored_once(address: str, experiment: str, steps: int, tags: int) -> None:
    reader = trainboard.Reader(address)
    (run,) = reader.runs(experiment)
    for tag in range(tags):
        series = reader.scalars(run.id, f"m{tag}")
        assert series.total == steps, f"m{tag}: {series.total} stored of {steps}"
        np.testing.assert_array_equal(series.steps, np.arange(steps))
        expected = np.array([_value(s, tag) for s in range(steps)])
        # A checksum of the values: every point once, with its own value.
        assert float(series.values.sum()) == pytest.approx(float(expected.sum()), rel=1e-12)
        np.testing.assert_array_equal(series.values, expected)


@pytest.fixture
def later_server(tmp_path: Path) -> Iterator[tuple[str, SqlStore]]:
    """An address where no server listens yet, and the store one will serve."""
    store = SqlStore.from_url(f"sqlite:///{tmp_path / 'later.db'}")
    yield f"127.0.0.1:{free_port()}", store
    store.close()


def test_a_trainer_that_starts_while_the_server_is_down_runs_to_the_end(
    spool_dir: Path, later_server: tuple[str, SqlStore], caplog: pytest.LogCaptureFixture
) -> None:
    address, store = later_server
    client = trainboard.Client("down", "r", server=address, spill_after=0.2, max_queue=1000)
    longest = 0.0
    for step in range(3000):
        started = time.perf_counter()
        client.log_scalars({f"m{t}": _value(step, t) for t in range(3)}, step=step)
        longest = max(longest, time.perf_counter() - started)
    assert longest < 1.0, f"a logging call waited {longest:.3f} s"
    assert client.close(timeout=1.0) is False
    (spooled,) = spool_files(spool_dir)
    assert client.spool_path == spooled
    contents = read_spool(spooled)
    assert (contents.experiment, contents.run) == ("down", "r")
    # The hint runs as printed: it names the server too.
    assert f"trainboard sync {spooled} --server {address}" in caplog.text
    assert caplog.text.count("server unavailable") == 1  # reported once

    host, port = address.rsplit(":", 1)
    handle = make_server(store, host=host, port=int(port))
    handle.start()
    try:
        results = trainboard.sync(spool_dir, server=address)
        assert [r.batches > 0 for r in results] == [True]
        assert list(spool_files(spool_dir)) == []
        _check_everything_stored_once(address, "down", 3000, 3)
        assert trainboard.Reader(address).runs("down")[0].status == "finished"
        # Sending the same data again stores nothing twice.
        assert trainboard.sync(spool_dir, server=address) == []
    finally:
        handle.stop(grace=None)


def test_the_spool_is_sent_when_the_server_comes_back(
    spool_dir: Path, later_server: tuple[str, SqlStore]
) -> None:
    address, store = later_server
    client = trainboard.Client("back", "r", server=address, spill_after=0.1)
    for step in range(2000):
        client.log_scalars({f"m{t}": _value(step, t) for t in range(2)}, step=step)
    assert client.flush(timeout=0.5) is False  # nothing can be stored yet
    host, port = address.rsplit(":", 1)
    handle = make_server(store, host=host, port=int(port))
    handle.start()
    try:
        for step in range(2000, 2500):
            client.log_scalars({f"m{t}": _value(step, t) for t in range(2)}, step=step)
        assert client.flush(timeout=60) is True
        assert client.close(timeout=30) is True
        assert list(spool_files(spool_dir)) == []
        _check_everything_stored_once(address, "back", 2500, 2)
    finally:
        handle.stop(grace=None)


def _writer(client: trainboard.Client, steps: int, tags: int, progress: list[int]) -> None:
    for step in range(steps):
        client.log_scalars({f"m{t}": _value(step, t) for t in range(tags)}, step=step)
        progress[0] = step
        if step % 200 == 0:
            time.sleep(0.001)  # a trainer does work between steps


def _wait_until(condition: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.01)
    raise AssertionError("condition not met before the deadline")


def test_killing_the_server_three_times_loses_and_doubles_nothing(
    db_url: str, tmp_path: Path, spool_dir: Path
) -> None:
    server = ServerProcess(db_url, tmp_path)
    server.start()
    steps, tags = 60_000, 4
    client = trainboard.Client(
        "crash",
        "r",
        server=server.address,
        spill_after=0.5,
        flush_interval=0.05,
        max_batch_points=2000,
    )
    progress = [0]
    writer = threading.Thread(target=_writer, args=(client, steps, tags, progress))
    try:
        writer.start()
        for kill in range(3):
            target = (kill + 1) * steps // 4
            _wait_until(lambda target=target: progress[0] >= target, 120)
            server.kill()
            time.sleep(0.3)  # the outage: the client retries and spools meanwhile
            server.start()
        writer.join(timeout=300)
        assert client.flush(timeout=120) is True
        assert client.close(timeout=60) is True
        _check_everything_stored_once(server.address, "crash", steps, tags)
        assert list(spool_files(spool_dir)) == []
    finally:
        server.stop()


def test_network_trouble_is_reported_once_and_never_raised(
    spool_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="trainboard")
    client = trainboard.Client("quiet", "r", server=f"127.0.0.1:{free_port()}", spill_after=0.1)
    for step in range(500):
        client.log_scalar("loss", 1.0, step=step)
    client.close(timeout=0.5)
    assert caplog.text.count("server unavailable") == 1


def test_sync_of_a_damaged_spool_sends_what_is_intact(
    spool_dir: Path, later_server: tuple[str, SqlStore]
) -> None:
    address, store = later_server
    client = trainboard.Client(
        "damaged", "r", server=address, spill_after=0.1, max_batch_points=100
    )
    for step in range(1000):
        client.log_scalar("loss", float(step), step=step)
    client.close(timeout=0.5)
    (spooled,) = spool_files(spool_dir)
    data = spooled.read_bytes()
    spooled.write_bytes(data[:-200])  # a crash cut the last batch short
    host, port = address.rsplit(":", 1)
    handle = make_server(store, host=host, port=int(port))
    handle.start()
    try:
        (result,) = trainboard.sync(spooled, server=address)
        assert result.truncated
        series = trainboard.Reader(address).scalars(result.run_id, "loss")
        assert 0 < series.total < 1000
        np.testing.assert_array_equal(series.steps, np.arange(series.total))
    finally:
        handle.stop(grace=None)


def test_remote_store_reports_an_unreachable_server_as_unavailable() -> None:
    store = RemoteStore(f"127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(trainboard.Unavailable):
        store.list_experiments()
    store.close()


def test_client_memory_stays_bounded_while_the_server_is_down(tmp_path: Path) -> None:
    script = f"""
import resource, sys
import numpy as np
import trainboard

def rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

client = trainboard.Client(
    "memory", "r", server="127.0.0.1:{free_port()}", spill_after=0.1,
    spool_dir={str(tmp_path / "spool")!r}, max_queue=20_000,
    max_snapshot_bytes=8 * 1024 * 1024,
)
weights = np.random.default_rng(0).normal(size=1_000_000).astype(np.float32)
step = 0
for _ in range(20_000):
    client.log_scalars({{f"m{{t}}": float(step + t) for t in range(10)}}, step=step)
    step += 1
client.log_histogram("w", weights, step=0)
before = rss_mib()
for _ in range(300_000):
    client.log_scalars({{f"m{{t}}": float(step + t) for t in range(10)}}, step=step)
    step += 1
    if step % 5000 == 0:
        client.log_histogram("w", weights, step=step)
after = rss_mib()
client.close(timeout=1)
print(before, after)
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600, check=True
    )
    before, after = map(float, out.stdout.split())
    # 3,000,000 more points and 60 more 4 MB tensors went to the spool, not to memory.
    assert after - before < 64, f"resident memory grew from {before:.0f} to {after:.0f} MiB"
    assert any((tmp_path / "spool").iterdir())


def test_the_sync_command_sends_a_left_spool(
    spool_dir: Path, later_server: tuple[str, SqlStore]
) -> None:
    address, store = later_server
    client = trainboard.Client("cli-sync", "r", server=address, spill_after=0.1)
    for step in range(100):
        client.log_scalar("loss", float(step), step=step)
    client.close(timeout=0.5)
    host, port = address.rsplit(":", 1)
    handle = make_server(store, host=host, port=int(port))
    handle.start()
    try:
        command = [sys.executable, "-m", "trainboard", "sync", "--server", address]
        out = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
        assert "sent cli-sync__r__" in out.stdout
        assert list(spool_files(spool_dir)) == []
        again = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
        assert "nothing to send" in again.stdout
        (run,) = trainboard.Reader(address).runs("cli-sync")
        assert trainboard.Reader(address).scalars(run.id, "loss").total == 100
    finally:
        handle.stop(grace=None)
