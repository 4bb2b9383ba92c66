"""The SDK against a real server on a loopback port over a real SQLite file."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import trainboard
from trainboard import GraphNode, NotFound


def test_logged_scalars_read_back_exactly(server_address: str) -> None:
    with trainboard.Client("exp", "run-a", server=server_address, params={"lr": 0.5}) as client:
        for step in range(100):
            client.log_scalar("loss", 1.0 / (step + 1), step=step)
        run_id = client.run_id
    reader = trainboard.Reader(server_address)
    series = reader.scalars(run_id, "loss")
    np.testing.assert_array_equal(series.steps, np.arange(100))
    np.testing.assert_array_equal(series.values, 1.0 / (np.arange(100) + 1))
    assert series.total == 100
    assert (np.diff(series.wall_times) >= 0).all()
    run = reader.runs("exp")[0]
    assert (run.name, run.params, run.status) == ("run-a", {"lr": 0.5}, "finished")
    assert run.finished_at is not None
    assert run.finished_at >= run.started_at


def test_non_finite_values_round_trip_through_the_sdk(server_address: str) -> None:
    values = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1e308, 5e-324]
    with trainboard.Client("exp", "nonfinite", server=server_address) as client:
        for step, value in enumerate(values):
            client.log_scalar("x", value, step=step)
        run_id = client.run_id
    got = trainboard.Reader(server_address).scalars(run_id, "x").values
    assert math.isnan(got[0])
    assert got[1] == math.inf
    assert got[2] == -math.inf
    assert got[3:].tolist() == values[3:]
    assert math.copysign(1.0, got[4]) == -1.0


def test_step_defaults_to_last_step_plus_one(server_address: str) -> None:
    with trainboard.Client("exp", "auto", server=server_address) as client:
        client.log_scalar("a", 1.0)
        client.log_scalar("a", 2.0)
        client.log_scalar("a", 3.0, step=10)
        client.log_scalar("a", 4.0)
        run_id = client.run_id
    series = trainboard.Reader(server_address).scalars(run_id, "a")
    assert series.steps.tolist() == [0, 1, 10, 11]


def test_log_scalars_without_step_uses_the_largest_next_step(server_address: str) -> None:
    with trainboard.Client("exp", "multi", server=server_address) as client:
        client.log_scalar("a", 0.0, step=5)
        client.log_scalars({"a": 1.0, "b": 2.0})
        client.log_scalars({"a": 1.5, "b": 2.5})
        run_id = client.run_id
    reader = trainboard.Reader(server_address)
    assert reader.scalars(run_id, "a").steps.tolist() == [5, 6, 7]
    assert reader.scalars(run_id, "b").steps.tolist() == [6, 7]


def test_a_script_run_again_makes_a_new_run_and_leaves_the_old_one(server_address: str) -> None:
    # Steps 0-9, then a rerun that logs steps 0-4: every other tracker keeps both.
    with trainboard.Client("exp", "lr=0.5", server=server_address, params={"lr": 0.5}) as first:
        for step in range(10):
            first.log_scalar("loss", float(step), step=step)
        first_id = first.run_id
    with trainboard.Client("exp", "lr=0.5", server=server_address, params={"lr": 0.4}) as again:
        for step in range(5):
            again.log_scalar("loss", -float(step), step=step)
        assert not again.resumed
        assert again.run_info.name == "lr=0.5 (2)"
        again_id = again.run_id
    reader = trainboard.Reader(server_address)
    assert reader.scalars(first_id, "loss").values.tolist() == [float(s) for s in range(10)]
    assert reader.scalars(again_id, "loss").values.tolist() == [-float(s) for s in range(5)]
    runs = {r.name: r for r in reader.runs("exp")}
    assert set(runs) == {"lr=0.5", "lr=0.5 (2)"}
    assert (runs["lr=0.5"].params, runs["lr=0.5 (2)"].params) == ({"lr": 0.5}, {"lr": 0.4})


def test_resume_continues_the_run_and_its_steps(server_address: str) -> None:
    with trainboard.Client("exp", "resume", server=server_address, params={"lr": 1}) as first:
        first.log_scalar("loss", 1.0)
        first.log_scalar("loss", 0.5)
        first_id = first.run_id
        assert not first.resumed
    with trainboard.Client(
        "exp", "resume", server=server_address, params={"lr": 2, "seed": 3}, resume=True
    ) as second:
        second.log_scalar("loss", 0.25)
        assert second.run_id == first_id
        assert second.resumed
    with trainboard.Client(
        "exp", "resume", server=server_address, params=None, resume=True
    ) as third:
        third.log_scalar("loss", 0.125)
    reader = trainboard.Reader(server_address)
    assert reader.scalars(first_id, "loss").steps.tolist() == [0, 1, 2, 3]
    runs = reader.runs("exp")
    assert len(runs) == 1
    assert runs[0].params == {"lr": 2, "seed": 3}


def test_relogging_a_step_replaces_the_value(server_address: str) -> None:
    with trainboard.Client("exp", "relog", server=server_address) as client:
        client.log_scalar("loss", 1.0, step=3)
        client.flush()
        client.log_scalar("loss", 2.0, step=3)
        run_id = client.run_id
    series = trainboard.Reader(server_address).scalars(run_id, "loss")
    assert series.steps.tolist() == [3]
    assert series.values.tolist() == [2.0]
    assert series.total == 1


def test_flush_waits_until_points_are_readable(server_address: str) -> None:
    client = trainboard.Client("exp", "flush", server=server_address, flush_interval=60)
    reader = trainboard.Reader(server_address)
    client.log_scalars({"a": 1.0, "b": 2.0}, step=0)
    assert client.flush(timeout=30)
    assert reader.scalars(client.run_id, "a").values.tolist() == [1.0]
    runs = reader.runs("exp")
    assert runs[0].status == "running"
    client.close()
    assert reader.runs("exp")[0].status == "finished"


def test_many_points_arrive_in_several_batches(server_address: str) -> None:
    with trainboard.Client("exp", "big", server=server_address, max_batch_points=1000) as client:
        for step in range(5000):
            client.log_scalars({"a": float(step), "b": -float(step)}, step=step)
        run_id = client.run_id
    reader = trainboard.Reader(server_address)
    a = reader.scalars(run_id, "a")
    assert a.total == 5000
    np.testing.assert_array_equal(a.values, np.arange(5000.0))
    small = reader.scalars(run_id, "b", max_points=100)
    assert len(small) <= 100
    assert small.total == 5000
    assert small.steps[0] == 0
    assert small.steps[-1] == 4999


def test_histograms_read_back_with_bands(server_address: str) -> None:
    rng = np.random.default_rng(0)
    with trainboard.Client("exp", "hist", server=server_address) as client:
        for step in range(5):
            client.log_histogram("layer/W", rng.normal(size=(64, 10)), step=step * 10)
        client.log_histogram("layer/b", np.zeros(10))
        run_id = client.run_id
    reader = trainboard.Reader(server_address)
    hs = reader.histograms(run_id, "layer/W")
    assert [h.step for h in hs] == [0, 10, 20, 30, 40]
    h = hs[-1]
    assert h.count == 640
    assert sum(h.bucket_counts) == 640
    bands = h.bands()
    assert len(bands) == 9
    assert bands[0] == h.min
    assert bands[-1] == h.max
    assert list(bands) == sorted(bands)
    b = reader.histograms(run_id, "layer/b")[0]
    assert (b.min, b.max, b.bucket_counts) == (0.0, 0.0, (10,))
    kinds = {(t.name, t.kind) for t in reader.tags(run_id)}
    assert kinds == {("layer/W", "histogram"), ("layer/b", "histogram")}
    assert len(reader.histograms(run_id, "layer/W", max_steps=2)) == 2


def test_torch_tensors_are_accepted(server_address: str) -> None:
    torch = pytest.importorskip("torch")
    with trainboard.Client("exp", "torch", server=server_address) as client:
        client.log_scalar("loss", torch.tensor(0.5), step=0)
        client.log_histogram("w", torch.arange(100, dtype=torch.float32).reshape(10, 10), step=0)
        run_id = client.run_id
    reader = trainboard.Reader(server_address)
    assert reader.scalars(run_id, "loss").values.tolist() == [0.5]
    h = reader.histograms(run_id, "w")[0]
    assert (h.count, h.min, h.max, h.sum) == (100, 0.0, 99.0, 4950.0)


def test_graph_is_stored_and_replaced(server_address: str) -> None:
    nodes = [
        GraphNode("x", "Placeholder", shape=(-1, 64), dtype="float32"),
        GraphNode("layer/W", "Variable", shape=(64, 10), dtype="float32"),
        GraphNode("layer/matmul", "MatMul", inputs=("x", "layer/W"), attributes={"a": "1"}),
    ]
    with trainboard.Client("exp", "graph", server=server_address) as client:
        client.log_graph(nodes[:2])
        client.log_graph(nodes)
        run_id = client.run_id
    assert trainboard.Reader(server_address).graph(run_id) == nodes


def test_graph_accepts_dicts_and_rejects_unknown_inputs(server_address: str) -> None:
    with trainboard.Client("exp", "graph-dicts", server=server_address) as client:
        client.log_graph(
            [{"name": "x", "op": "Placeholder"}, {"name": "y", "op": "Neg", "inputs": ["x"]}]
        )
        with pytest.raises(ValueError, match="input 'nope'"):
            client.log_graph([{"name": "y", "op": "Neg", "inputs": ["nope"]}])
        run_id = client.run_id
    graph = trainboard.Reader(server_address).graph(run_id)
    assert graph is not None
    assert [n.name for n in graph] == ["x", "y"]


def test_a_run_without_a_graph_has_none(server_address: str) -> None:
    with trainboard.Client("exp", "nograph", server=server_address) as client:
        client.log_scalar("a", 1.0)
        run_id = client.run_id
    assert trainboard.Reader(server_address).graph(run_id) is None


def test_an_exception_in_the_with_block_marks_the_run_failed(server_address: str) -> None:
    with pytest.raises(RuntimeError), trainboard.Client("exp", "boom", server=server_address):
        raise RuntimeError("training diverged")
    assert trainboard.Reader(server_address).runs("exp")[0].status == "failed"


def test_logging_after_close_is_an_error(server_address: str) -> None:
    client = trainboard.Client("exp", "closed", server=server_address)
    client.close()
    assert client.close() is True  # closing twice does nothing
    with pytest.raises(RuntimeError, match="closed"):
        client.log_scalar("a", 1.0)


def test_reader_raises_not_found_for_unknown_runs_and_tags(server_address: str) -> None:
    with trainboard.Client("exp", "nf", server=server_address) as client:
        client.log_scalar("a", 1.0)
        run_id = client.run_id
    reader = trainboard.Reader(server_address)
    with pytest.raises(NotFound, match="no scalar tag 'b'"):
        reader.scalars(run_id, "b")
    with pytest.raises(NotFound):
        reader.scalars(run_id + 1000, "a")
    with pytest.raises(NotFound):
        reader.tags(run_id + 1000)
    with pytest.raises(NotFound, match="no histogram tag"):
        reader.histograms(run_id, "a")
    assert reader.experiments() == ["exp"]
    assert reader.runs("other") == []


def test_series_convert_to_pandas(server_address: str) -> None:
    pytest.importorskip("pandas")
    with trainboard.Client("exp", "pd", server=server_address) as client:
        client.log_scalars({"a": 1.0}, step=4)
        run_id = client.run_id
    frame = trainboard.Reader(server_address).scalars(run_id, "a").to_pandas()
    assert list(frame.columns) == ["step", "wall_time", "value"]
    assert frame["step"].tolist() == [4]


def test_a_client_is_closed_at_interpreter_exit(server_address: str) -> None:
    script = textwrap.dedent(
        f"""
        import trainboard
        client = trainboard.Client("exit", "atexit", server={server_address!r}, flush_interval=60)
        for step in range(1000):
            client.log_scalar("loss", float(step), step=step)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    reader = trainboard.Reader(server_address)
    run = reader.runs("exit")[0]
    assert run.status == "finished"
    assert reader.scalars(run.id, "loss").total == 1000


def test_the_client_package_imports_without_sqlalchemy_or_streamlit() -> None:
    script = textwrap.dedent(
        """
        import sys
        BLOCKED = ("sqlalchemy", "streamlit", "trainboard_server", "alembic")
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"blocked {name}")
                return None
        sys.meta_path.insert(0, Block())
        import trainboard
        from trainboard import Client, Reader, smooth, summarize
        assert "sqlalchemy" not in sys.modules and "streamlit" not in sys.modules
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "ok"


def test_a_long_series_is_read_whole_through_pages(tmp_path: Path) -> None:
    from trainboard_server.server import make_server
    from trainboard_server.sql_store import SqlStore

    store = SqlStore.from_url(f"sqlite:///{tmp_path / 'pages.db'}")
    handle = make_server(store, port=0, page_points=1000)
    handle.start()
    try:
        with trainboard.Client("pages", "r", server=handle.address) as client:
            for step in range(5500):
                client.log_scalars({"a": float(step), "b": -float(step)}, step=step)
            run_id = client.run_id
        reader = trainboard.Reader(handle.address)
        series = reader.scalars(run_id, "a")
        assert (len(series), series.total, series.next_step) == (5500, 5500, None)
        np.testing.assert_array_equal(series.values, np.arange(5500.0))
        both = reader.scalars_many([run_id], ["a", "b"], min_step=100, max_step=4100)
        assert [len(s) for s in both] == [4001, 4001]
        assert reader.scalars(run_id, "a", max_points=50).total == 5500
    finally:
        handle.stop(grace=None)
        store.close()


# ---------------------------------------------------------------- liveness


def wait_for(condition: Callable[[], bool], seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_an_idle_client_keeps_its_run_from_being_listed_crashed(tmp_path: Path) -> None:
    from trainboard_server.server import make_server
    from trainboard_server.sql_store import SqlStore

    server_now = [time.time()]
    store = SqlStore.from_url(
        f"sqlite:///{tmp_path / 'live.db'}", crashed_after=60.0, clock=lambda: server_now[0]
    )
    handle = make_server(store, port=0)
    handle.start()
    try:
        client = trainboard.Client(
            "live", "idle", handle.address, flush_interval=0.02, heartbeat_interval=0.05
        )
        client.log_scalar("loss", 1.0, step=0)
        assert client.flush(timeout=30)
        reader = trainboard.Reader(handle.address)

        def status() -> str:
            return reader.run("live", "idle").status

        # The server's clock jumps ahead: the run has been silent for too long ...
        server_now[0] += 3_600.0
        # ... until the idle client's next heartbeat, stamped with the server's time.
        assert wait_for(lambda: status() == "running")
        assert reader.run("live", "idle").updated_at == server_now[0]
        client.close(timeout=30)
        assert status() == "finished"
        reader.close()
    finally:
        handle.stop(grace=None)
        store.close()


def test_heartbeat_interval_must_be_positive(server_address: str) -> None:
    with pytest.raises(ValueError, match="heartbeat_interval"):
        trainboard.Client("e", "r", server_address, heartbeat_interval=0)


def _log_mixed(client: trainboard.Client) -> None:
    """log_scalars rows of changing tag sets, with and without steps, mixed with
    log_scalar calls on the same tags: one batch (flush only at the end)."""
    client.log_scalars({"a": 0.0, "b": 10.0})  # step 0
    client.log_scalars({"a": 1.0, "b": 11.0})  # step 1
    client.log_scalar("a", 2.0)  # step 2
    client.log_scalars({"a": 3.0, "b": 13.0})  # step 3 (past a's 2)
    client.log_scalars({"b": 14.0, "c": 24.0}, step=7)
    client.log_scalars({"b": 15.0, "c": 25.0})  # step 8
    client.log_scalars({"a": -1.0, "b": -11.0}, step=1)  # re-logs step 1: last write wins
    client.log_scalar("b", -13.0, step=3)
    client.log_scalars({"a": 9.0, "b": 19.0})  # step 9: past b's 8
    for step in range(10, 20):
        client.log_scalars({"c": float(step)}, step=step)


def _read_mixed(reader: trainboard.Reader, run_id: int) -> dict[str, list[tuple[int, float]]]:
    return {
        tag: list(zip(s.steps.tolist(), s.values.tolist(), strict=True))
        for tag in ("a", "b", "c")
        for s in [reader.scalars(run_id, tag)]
    }


MIXED = {
    "a": [(0, 0.0), (1, -1.0), (2, 2.0), (3, 3.0), (9, 9.0)],
    "b": [(0, 10.0), (1, -11.0), (3, -13.0), (7, 14.0), (8, 15.0), (9, 19.0)],
    "c": [(7, 24.0), (8, 25.0)] + [(step, float(step)) for step in range(10, 20)],
}


def test_rows_and_single_points_keep_their_order_and_steps(server_address: str) -> None:
    with trainboard.Client("exp", "mixed", server=server_address) as client:
        run_id = client.run_id
        _log_mixed(client)
    with trainboard.Reader(server_address) as reader:
        assert _read_mixed(reader, run_id) == MIXED


def _serve_and_log(
    sqlite_url: str, run: str, seen: list[tuple[int, int]]
) -> dict[str, trainboard.ScalarSeries]:
    """A real server (built now, so that it picks up the servicer as patched), one
    client logging 100 rows of three tags; the stored series."""
    from trainboard_server.server import make_server
    from trainboard_server.sql_store import SqlStore

    store = SqlStore.from_url(sqlite_url)
    handle = make_server(store, host="127.0.0.1", port=0)
    handle.start()
    try:
        seen.clear()
        with trainboard.Client("exp", run, server=handle.address) as client:
            for step in range(100):
                client.log_scalars({"a": float(step), "b": 1.0, "c": 2.0}, step=step)
        with trainboard.Reader(handle.address) as reader:
            return {tag: reader.scalars(client.run_id, tag) for tag in ("a", "b", "c")}
    finally:
        handle.stop(grace=None)
        store.close()


def test_rows_go_as_scalar_rows_only_to_a_server_that_takes_them(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that does not say it takes ScalarRows (one that predates them would
    skip the field) gets per-tag columns, and stores the same points."""
    from trainboard_server.servicer import WriteServicer

    seen: list[tuple[int, int]] = []  # (rows, scalars) of each WriteBatch
    start_run, write_batch = WriteServicer.StartRun, WriteServicer.WriteBatch

    def write_batch_seen(self: Any, request: Any, context: Any) -> Any:
        seen.append((len(request.rows), len(request.scalars)))
        return write_batch(self, request, context)

    monkeypatch.setattr(WriteServicer, "WriteBatch", write_batch_seen)
    new = _serve_and_log(sqlite_url, "new-server", seen)
    assert seen
    assert all(rows == 1 and scalars == 0 for rows, scalars in seen)

    def start_run_without_rows(self: Any, request: Any, context: Any) -> Any:
        response = start_run(self, request, context)
        response.accepts_rows = False
        return response

    monkeypatch.setattr(WriteServicer, "StartRun", start_run_without_rows)
    old = _serve_and_log(sqlite_url, "old-server", seen)
    assert seen
    assert all(rows == 0 and scalars == 3 for rows, scalars in seen)
    for tag in ("a", "b", "c"):
        np.testing.assert_array_equal(new[tag].steps, np.arange(100))
        np.testing.assert_array_equal(new[tag].steps, old[tag].steps)
        np.testing.assert_array_equal(new[tag].values, old[tag].values)


def test_wide_rows_are_split_into_batches_near_the_limit(server_address: str) -> None:
    tags = [f"layer{i}/norm" for i in range(300)]
    with trainboard.Client("exp", "wide", server=server_address, max_batch_points=1000) as client:
        run_id = client.run_id
        for step in range(50):
            client.log_scalars({tag: float(step + i) for i, tag in enumerate(tags)})
    with trainboard.Reader(server_address) as reader:
        for i in (0, 299):
            s = reader.scalars(run_id, tags[i])
            np.testing.assert_array_equal(s.steps, np.arange(50))
            np.testing.assert_array_equal(s.values, np.arange(50.0) + i)


def test_queued_records_are_left_alone_by_the_garbage_collector(server_address: str) -> None:
    """A queued log_scalars/log_scalar record holds only tuples of str and float, so the
    collector untracks it (a record holding a dict would stay tracked): a long queue
    does not make the trainer's full collections longer."""
    import gc

    with trainboard.Client("exp", "gc", server=server_address, flush_interval=60) as client:
        client.run_id  # noqa: B018 - the run exists; nothing else wakes the sender
        for step in range(100):
            client.log_scalars({"a": float(step), "b": 1.0}, step=step)
            client.log_scalar("c", 2.0, step=step)
        records = list(client._queue)
        assert len(records) == 200
        gc.collect()  # a record is untracked once the tuples inside it are
        gc.collect()
        assert not any(gc.is_tracked(record) for record in records)


def test_a_full_snapshot_budget_wakes_a_sleeping_sender(server_address: str) -> None:
    """Histograms wait for the sender's next tick (flush_interval) unless their
    snapshots fill the budget: then the caller wakes the sender rather than waiting
    for the tick (30 s here) once per histogram."""
    values = np.arange(250_000, dtype=np.float32)  # 1 MB
    with trainboard.Client(
        "exp",
        "budget",
        server=server_address,
        flush_interval=30,
        max_snapshot_bytes=1_500_000,
    ) as client:
        run_id = client.run_id
        start = time.monotonic()
        for step in range(5):
            client.log_histogram("w", values, step=step)
        assert time.monotonic() - start < 20
    with trainboard.Reader(server_address) as reader:
        assert [h.step for h in reader.histograms(run_id, "w")] == [0, 1, 2, 3, 4]


def test_waiting_for_the_snapshot_budget_wakes_the_sender() -> None:
    import threading

    from trainboard.records import ByteBudget

    budget, wake = ByteBudget(10), threading.Event()
    budget.take(8, lambda: True, wake)
    assert not wake.is_set()
    assert budget.pressed  # 8 of 10 bytes held

    def sender() -> None:  # asleep until woken, then frees the budget
        if wake.wait(5):
            budget.give(8)

    thread = threading.Thread(target=sender)
    thread.start()
    start = time.monotonic()
    budget.take(8, lambda: True, wake)
    thread.join()
    assert time.monotonic() - start < 4
    assert budget.used == 8


def test_more_tags_than_a_batch_may_carry_are_sent_in_several(server_address: str) -> None:
    from trainboard.validation import MAX_TAGS_PER_BATCH

    wide = {f"wide/{i:05d}": float(i) for i in range(MAX_TAGS_PER_BATCH + 2345)}
    with trainboard.Client("exp", "many-tags", server=server_address) as client:
        client.log_scalars(wide, step=0)
        for i in range(MAX_TAGS_PER_BATCH + 10):
            client.log_scalar(f"single/{i:05d}", -float(i), step=1)
        assert client.flush(timeout=120) is True
        run_id = client.run_id
    reader = trainboard.Reader(server_address)
    names = {t.name for t in reader.tags(run_id)}
    assert len(names) == len(wide) + MAX_TAGS_PER_BATCH + 10
    assert reader.scalars(run_id, "wide/12344").values.tolist() == [12344.0]
    assert reader.scalars(run_id, "single/10009").steps.tolist() == [1]
