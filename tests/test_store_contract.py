"""The storage contract (``trainboard.store``), run against every implementation:
SqlStore on SQLite, SqlStore on PostgreSQL, and RemoteStore through a real gRPC
server on loopback."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pytest
from store_reads import read_histograms, read_scalars

from trainboard.errors import InvalidArgument, NotFound
from trainboard.store import Store
from trainboard.types import (
    GraphNode,
    HistogramRecord,
    HistogramSummary,
    ScalarColumns,
    WriteBatch,
)
from trainboard_server.sql_store import SqlStore

UNKNOWN_RUN = 987_654_321
ODD_NAMES = [
    'it\'s "quoted"',
    "x'); DROP TABLE runs; --",
    "100% _wild_ [chars] \\ back",
    "ünïcødé/数据/🚀",
    "a" * 256,
]


# The stores under test list a run as crashed after this many seconds without a
# write, by the test's clock.
CRASHED_AFTER = 60.0


def _as_store(store: SqlStore) -> Store:
    return store  # mypy checks here that SqlStore satisfies the protocol


class Clock:
    """The stores' clock: the test sets the time (the wall times the tests write
    are small numbers, so it starts at 0: nothing has been silent for long)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["sqlite", "postgres", "grpc"])
def store(request: pytest.FixtureRequest, clock: Clock) -> Iterator[Store]:
    if request.param == "grpc":
        from trainboard.transport import RemoteStore
        from trainboard_server.server import make_server

        sql_store = SqlStore.from_url(
            request.getfixturevalue("sqlite_url"), crashed_after=CRASHED_AFTER, clock=clock
        )
        handle = make_server(sql_store, host="127.0.0.1", port=0)
        handle.start()
        remote = RemoteStore(handle.address)
        try:
            yield remote
        finally:
            remote.close()
            handle.stop(grace=None)
            sql_store.close()
        return
    url_fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    local = SqlStore.from_url(
        request.getfixturevalue(url_fixture), crashed_after=CRASHED_AFTER, clock=clock
    )
    try:
        yield _as_store(local)
    finally:
        local.close()


_sequences = itertools.count(1)


Steps = Sequence[int] | np.ndarray
Values = Sequence[float] | np.ndarray


def scalars(
    run_id: int,
    points: dict[str, tuple[Steps, Values]],
    *,
    client_id: str = "client-a",
    sequence: int | None = None,
    wall_time: float = 1_000.0,
) -> WriteBatch:
    """A batch of scalar points per tag; wall times are ``wall_time + step``."""
    columns = tuple(
        ScalarColumns(
            tag=tag,
            steps=np.asarray(steps, dtype=np.int64),
            wall_times=wall_time + np.asarray(steps, dtype=np.float64),
            values=np.asarray(values, dtype=np.float64),
        )
        for tag, (steps, values) in points.items()
    )
    return WriteBatch(
        client_id=client_id,
        sequence=next(_sequences) if sequence is None else sequence,
        run_id=run_id,
        scalars=columns,
    )


def summary(count: int, low: float, high: float, buckets: Sequence[int]) -> HistogramSummary:
    finite = sum(buckets)
    return HistogramSummary(
        count=count,
        min=low,
        max=high,
        sum=(low + high) / 2 * finite,
        sum_squares=float(high * high * finite),
        nan_count=count - finite,
        posinf_count=0,
        neginf_count=0,
        bucket_counts=tuple(buckets),
    )


def histograms(run_id: int, tag: str, steps: Sequence[int], scale: float = 1.0) -> WriteBatch:
    records = tuple(
        HistogramRecord(
            tag=tag,
            step=step,
            wall_time=2_000.0 + step,
            summary=summary(10, -scale * step, scale * step + 1, [step % 7, 3, 10 - 3 - step % 7]),
        )
        for step in steps
    )
    return WriteBatch(
        client_id="hist-client", sequence=next(_sequences), run_id=run_id, histograms=records
    )


def new_run(store: Store, experiment: str = "digits", name: str = "lr=0.5") -> int:
    return store.start_run(experiment, name, {"lr": 0.5}, 100.0).run.id


# ---------------------------------------------------------------- runs


def test_starting_a_new_run_creates_it_running(store: Store) -> None:
    started = store.start_run("digits", "lr=0.5", {"lr": 0.5, "layers": [2, 3]}, 100.0)

    assert not started.resumed
    assert started.last_steps == ()
    run = started.run
    assert run.id > 0
    assert (run.experiment, run.name, run.status) == ("digits", "lr=0.5", "running")
    assert dict(run.params) == {"lr": 0.5, "layers": [2, 3]}
    assert run.started_at == 100.0
    assert run.finished_at is None
    assert store.list_runs("digits") == [run]


def test_resuming_a_run_makes_it_running_again(store: Store) -> None:
    first = store.start_run("digits", "lr=0.5", {"lr": 0.5}, 100.0).run
    store.finish_run(first.id, "failed", 150.0)

    again = store.start_run("digits", "lr=0.5", None, 200.0, resume=True)

    assert again.resumed
    assert again.run.id == first.id
    assert again.run.status == "running"
    assert again.run.finished_at is None
    assert again.run.started_at == 100.0
    assert again.run.updated_at == 200.0
    assert [r.id for r in store.list_runs("digits")] == [first.id]


def test_starting_a_used_name_again_makes_a_new_run_and_leaves_the_old_one(store: Store) -> None:
    first = store.start_run("digits", "lr=0.5", {"lr": 0.5}, 100.0).run
    store.write_batch(scalars(first.id, {"loss": ([0, 1], [3.0, 2.0])}))
    store.finish_run(first.id, "finished", 150.0)

    second = store.start_run("digits", "lr=0.5", {"lr": 0.4}, 200.0)
    third = store.start_run("digits", "lr=0.5", None, 300.0)

    assert not second.resumed
    assert not third.resumed
    assert (second.run.name, third.run.name) == ("lr=0.5 (2)", "lr=0.5 (3)")
    assert second.run.id != first.id
    assert third.run.id != second.run.id
    assert second.last_steps == ()
    assert dict(second.run.params) == {"lr": 0.4}
    listed = {r.name: r for r in store.list_runs("digits")}
    assert set(listed) == {"lr=0.5", "lr=0.5 (2)", "lr=0.5 (3)"}
    assert (listed["lr=0.5"].status, dict(listed["lr=0.5"].params)) == ("finished", {"lr": 0.5})
    old = read_scalars(store, first.id, "loss")
    assert old is not None
    assert old.values.tolist() == [3.0, 2.0]


def test_resume_continues_the_newest_run_of_the_name(store: Store) -> None:
    store.start_run("digits", "r", None, 100.0)
    newest = store.start_run("digits", "r", None, 200.0).run
    store.start_run("digits", "other", None, 250.0)
    store.start_run("digits", "r (2) x", None, 260.0)  # another name that only looks alike

    resumed = store.start_run("digits", "r", {"seed": 1}, 300.0, resume=True)

    assert resumed.resumed
    assert (resumed.run.id, resumed.run.name) == (newest.id, "r (2)")
    assert len(store.list_runs("digits")) == 4


def test_resume_without_a_run_of_that_name_creates_it(store: Store) -> None:
    started = store.start_run("digits", "fresh", None, 100.0, resume=True)

    assert not started.resumed
    assert started.run.name == "fresh"


def test_a_start_retried_by_the_same_client_finds_its_run(store: Store) -> None:
    store.start_run("digits", "r", None, 100.0)
    first = store.start_run("digits", "r", None, 200.0, client_id="client-a")
    store.write_batch(scalars(first.run.id, {"loss": ([4], [1.0])}))

    again = store.start_run("digits", "r", None, 201.0, client_id="client-a")
    other = store.start_run("digits", "r", None, 202.0, client_id="client-b")

    assert first.run.name == "r (2)"
    assert (again.run.id, again.resumed) == (first.run.id, False)
    assert [(t.name, t.last_step) for t in again.last_steps] == [("loss", 4)]
    assert other.run.name == "r (3)"


@pytest.mark.parametrize("name", ["a_b", "a%b", "50% (2)", "x" * 256])
def test_rerun_names_stay_valid_and_unique_whatever_the_name(store: Store, name: str) -> None:
    names = [store.start_run("digits", name, None, float(i)).run.name for i in range(12)]

    assert len(set(names)) == 12
    assert names[0] == name
    assert all(len(n) <= 256 for n in names)
    assert names[-1].endswith(" (12)")
    assert store.start_run("digits", name, None, 99.0, resume=True).run.name == names[-1]


def test_resuming_merges_params_new_values_replacing_old(store: Store) -> None:
    store.start_run("digits", "r", {"lr": 0.5, "seed": 1}, 100.0)

    resumed = store.start_run("digits", "r", {"lr": 0.1, "epochs": 3}, 200.0, resume=True)

    expected = {"lr": 0.1, "seed": 1, "epochs": 3}
    assert dict(resumed.run.params) == expected
    assert dict(store.list_runs("digits")[0].params) == expected


def test_resuming_with_params_none_keeps_them(store: Store) -> None:
    store.start_run("digits", "r", {"lr": 0.5}, 100.0)

    resumed = store.start_run("digits", "r", None, 200.0, resume=True)

    assert dict(resumed.run.params) == {"lr": 0.5}


def test_resuming_returns_the_last_step_of_every_tag_and_kind(store: Store) -> None:
    run_id = new_run(store)
    store.write_batch(scalars(run_id, {"loss": ([0, 1, 7], [3.0, 2.0, 1.0]), "acc": ([4], [0.5])}))
    store.write_batch(scalars(run_id, {"loss": ([2], [1.5])}))  # an older step: last stays 7
    store.write_batch(histograms(run_id, "loss", [3, 5]))

    resumed = store.start_run("digits", "lr=0.5", None, 300.0, resume=True)

    assert [(t.name, t.kind, t.last_step) for t in resumed.last_steps] == [
        ("loss", "histogram", 5),
        ("acc", "scalar", 4),
        ("loss", "scalar", 7),
    ]


def test_runs_are_listed_in_creation_order_per_experiment(store: Store) -> None:
    ids = [store.start_run("exp", name, None, 1.0).run.id for name in ["b", "a", "c"]]
    other = store.start_run("other", "a", None, 1.0).run.id

    assert [r.id for r in store.list_runs("exp")] == ids
    assert [r.name for r in store.list_runs("exp")] == ["b", "a", "c"]
    assert [r.id for r in store.list_runs("other")] == [other]
    assert other not in ids
    assert store.list_runs("nobody-made-this") == []


def test_experiments_are_listed_sorted(store: Store) -> None:
    assert store.list_experiments() == []
    for experiment in ["mnist", "cifar", "digits", "cifar"]:
        store.start_run(experiment, "run", None, 1.0)

    assert store.list_experiments() == ["cifar", "digits", "mnist"]


def test_finishing_a_run_sets_its_status_and_times(store: Store) -> None:
    run_id = new_run(store)

    store.finish_run(run_id, "finished", 160.0)

    run = store.list_runs("digits")[0]
    assert (run.status, run.finished_at, run.updated_at) == ("finished", 160.0, 160.0)
    assert run.duration == 60.0


def test_finishing_with_an_unknown_status_is_an_invalid_argument(store: Store) -> None:
    run_id = new_run(store)

    with pytest.raises(InvalidArgument, match="status"):
        store.finish_run(run_id, "exploded", 160.0)
    assert store.list_runs("digits")[0].status == "running"


def test_a_write_moves_the_runs_updated_time(store: Store) -> None:
    run_id = new_run(store)  # started at 100

    store.write_batch(scalars(run_id, {"loss": ([5, 9], [1.0, 2.0])}, wall_time=1_000.0))

    run = store.list_runs("digits")[0]
    assert run.updated_at == 1_009.0
    assert run.duration == 909.0


def test_tags_are_listed_by_kind_then_name_with_their_last_step(store: Store) -> None:
    run_id = new_run(store)
    assert store.list_tags(run_id) == []
    store.write_batch(scalars(run_id, {"b": ([1, 2], [0.0, 0.0]), "a": ([9], [0.0])}))
    store.write_batch(histograms(run_id, "w", [4]))

    tags = store.list_tags(run_id)

    assert [(t.name, t.kind, t.last_step) for t in tags] == [
        ("w", "histogram", 4),
        ("a", "scalar", 9),
        ("b", "scalar", 2),
    ]


# ---------------------------------------------------------------- scalars


def test_scalars_round_trip(store: Store) -> None:
    run_id = new_run(store)
    steps = np.arange(0, 3000, 3)
    values = np.sin(steps / 100.0)

    result = store.write_batch(scalars(run_id, {"loss": (steps, values)}))

    assert (result.scalar_points, result.histogram_points, result.duplicate) == (1000, 0, False)
    series = read_scalars(store, run_id, "loss")
    assert series is not None
    assert (series.run_id, series.tag, series.total, len(series)) == (run_id, "loss", 1000, 1000)
    np.testing.assert_array_equal(series.steps, steps)
    np.testing.assert_array_equal(series.values, values)
    np.testing.assert_array_equal(series.wall_times, 1_000.0 + steps)
    assert series.steps.dtype == np.int64
    assert series.values.dtype == series.wall_times.dtype == np.float64


def test_relogging_a_step_replaces_the_value(store: Store) -> None:
    run_id = new_run(store)
    store.write_batch(scalars(run_id, {"loss": ([1, 2, 3], [1.0, 2.0, 3.0])}))

    store.write_batch(scalars(run_id, {"loss": ([2], [20.0])}, wall_time=5_000.0))

    series = read_scalars(store, run_id, "loss")
    assert series is not None
    assert series.steps.tolist() == [1, 2, 3]
    assert series.values.tolist() == [1.0, 20.0, 3.0]
    assert series.wall_times.tolist() == [1_001.0, 5_002.0, 1_003.0]
    assert series.total == 3


def test_the_last_write_of_a_step_wins_within_a_batch(store: Store) -> None:
    run_id = new_run(store)

    store.write_batch(scalars(run_id, {"loss": ([5, 3, 5, 4, 3], [1.0, 2.0, 3.0, 4.0, 5.0])}))

    series = read_scalars(store, run_id, "loss")
    assert series is not None
    assert series.steps.tolist() == [3, 4, 5]
    assert series.values.tolist() == [5.0, 4.0, 3.0]


def test_the_last_write_wins_across_many_batches_out_of_order(store: Store) -> None:
    run_id = new_run(store)
    rng = np.random.default_rng(7)
    expected: dict[int, float] = {}
    for _ in range(30):
        steps = rng.integers(0, 200, size=25)
        values = rng.normal(size=25)
        store.write_batch(scalars(run_id, {"x": (steps, values)}))
        for step, value in zip(steps.tolist(), values.tolist(), strict=True):
            expected[step] = value

    series = read_scalars(store, run_id, "x")

    assert series is not None
    assert series.steps.tolist() == sorted(expected)
    assert series.values.tolist() == [expected[s] for s in sorted(expected)]
    assert series.total == len(expected)


def test_non_finite_values_round_trip_exactly(store: Store) -> None:
    run_id = new_run(store)
    values = np.array([np.nan, np.inf, -np.inf, -0.0, 5e-324, 1.7976931348623157e308, 0.1])

    store.write_batch(scalars(run_id, {"odd": (np.arange(len(values)), values)}))

    series = read_scalars(store, run_id, "odd")
    assert series is not None
    assert series.values.tobytes() == values.tobytes()  # bit for bit, NaN and -0.0 included


def test_a_replayed_batch_is_stored_once_and_reported_duplicate(store: Store) -> None:
    run_id = new_run(store)
    batch = scalars(run_id, {"loss": ([1, 2], [1.0, 2.0])}, client_id="c1", sequence=7)
    assert not store.write_batch(batch).duplicate
    store.write_batch(scalars(run_id, {"loss": ([2], [99.0])}, client_id="c1", sequence=8))

    replay = store.write_batch(batch)

    assert replay.duplicate
    assert (replay.scalar_points, replay.histogram_points) == (0, 0)
    series = read_scalars(store, run_id, "loss")
    assert series is not None
    assert series.values.tolist() == [1.0, 99.0]  # the replay did not overwrite step 2


def test_a_batch_with_a_lower_sequence_is_a_duplicate(store: Store) -> None:
    run_id = new_run(store)
    store.write_batch(scalars(run_id, {"loss": ([1], [1.0])}, client_id="c1", sequence=10))

    older = store.write_batch(scalars(run_id, {"loss": ([5], [5.0])}, client_id="c1", sequence=3))

    assert older.duplicate
    series = read_scalars(store, run_id, "loss")
    assert series is not None
    assert series.steps.tolist() == [1]


def test_sequences_are_counted_per_client(store: Store) -> None:
    run_id = new_run(store)
    store.write_batch(scalars(run_id, {"loss": ([1], [1.0])}, client_id="c1", sequence=10))

    other = store.write_batch(scalars(run_id, {"loss": ([2], [2.0])}, client_id="c2", sequence=1))

    assert not other.duplicate
    series = read_scalars(store, run_id, "loss")
    assert series is not None
    assert series.steps.tolist() == [1, 2]


def test_a_batch_for_an_unknown_run_raises_not_found_and_stores_nothing(store: Store) -> None:
    run_id = new_run(store)
    batch = scalars(UNKNOWN_RUN, {"loss": ([1], [1.0])}, client_id="c1", sequence=1)

    with pytest.raises(NotFound):
        store.write_batch(batch)

    # The sequence was not recorded either: the same key for a real run is stored.
    retry = store.write_batch(scalars(run_id, {"loss": ([1], [1.0])}, client_id="c1", sequence=1))
    assert not retry.duplicate


def test_a_batch_is_atomic(store: Store) -> None:
    run_id = new_run(store)
    bad_histogram = HistogramRecord(
        tag="w", step=1, wall_time=1.0, summary=summary(600, 0.0, 1.0, [1] * 600)
    )
    batch = WriteBatch(
        client_id="c1",
        sequence=1,
        run_id=run_id,
        scalars=scalars(run_id, {"loss": ([1, 2], [1.0, 2.0])}).scalars,
        histograms=(bad_histogram,),
    )

    with pytest.raises(InvalidArgument, match="bucket"):
        store.write_batch(batch)

    assert read_scalars(store, run_id, "loss") is None
    assert store.list_tags(run_id) == []


@pytest.mark.parametrize(
    "call",
    [
        "write_batch",
        "finish_run",
        "set_graph",
        "list_tags",
        "read_scalars",
        "read_histograms",
        "get_graph",
        "heartbeat",
        "delete_run",
        "rename_run",
        "set_run_tags",
    ],
)
def test_every_run_taking_method_raises_not_found_for_an_unknown_run(
    store: Store, call: str
) -> None:
    new_run(store)
    calls: dict[str, Callable[[], object]] = {
        "write_batch": lambda: store.write_batch(scalars(UNKNOWN_RUN, {"x": ([1], [1.0])})),
        "finish_run": lambda: store.finish_run(UNKNOWN_RUN, "finished", 1.0),
        "set_graph": lambda: store.set_graph(UNKNOWN_RUN, [GraphNode(name="x", op="Input")]),
        "list_tags": lambda: store.list_tags(UNKNOWN_RUN),
        "read_scalars": lambda: read_scalars(store, UNKNOWN_RUN, "x"),
        "read_histograms": lambda: read_histograms(store, UNKNOWN_RUN, "x"),
        "get_graph": lambda: store.get_graph(UNKNOWN_RUN),
        "heartbeat": lambda: store.heartbeat(UNKNOWN_RUN),
        "delete_run": lambda: store.delete_run(UNKNOWN_RUN),
        "rename_run": lambda: store.rename_run(UNKNOWN_RUN, "new"),
        "set_run_tags": lambda: store.set_run_tags(UNKNOWN_RUN, ["a"]),
    }

    with pytest.raises(NotFound):
        calls[call]()


def test_reading_a_tag_the_run_does_not_have_returns_none(store: Store) -> None:
    run_id = new_run(store)
    store.write_batch(scalars(run_id, {"loss": ([1], [1.0])}))
    store.write_batch(histograms(run_id, "weights", [1]))

    assert read_scalars(store, run_id, "accuracy") is None
    assert read_histograms(store, run_id, "accuracy") is None
    assert read_scalars(store, run_id, "weights") is None  # a histogram tag, not a scalar one
    assert read_histograms(store, run_id, "loss") is None


def test_a_tag_holds_a_scalar_and_a_histogram_series_side_by_side(store: Store) -> None:
    run_id = new_run(store)
    store.write_batch(scalars(run_id, {"w": ([1, 2], [1.0, 2.0])}))
    store.write_batch(histograms(run_id, "w", [1, 2, 3]))

    scalar_series = read_scalars(store, run_id, "w")
    histogram_series = read_histograms(store, run_id, "w")

    assert scalar_series is not None
    assert histogram_series is not None
    assert scalar_series.total == 2
    assert histogram_series.total == 3


def test_min_and_max_step_select_the_points_and_the_total(store: Store) -> None:
    run_id = new_run(store)
    steps = np.arange(0, 50_000, 2)
    store.write_batch(scalars(run_id, {"loss": (steps, steps * 0.5)}))

    series = read_scalars(store, run_id, "loss", min_step=101, max_step=30_000)
    tail = read_scalars(store, run_id, "loss", min_step=49_990)
    head = read_scalars(store, run_id, "loss", max_step=4)
    nothing = read_scalars(store, run_id, "loss", min_step=60_000)

    assert series is not None
    assert tail is not None
    assert head is not None
    assert series.steps[0] == 102
    assert series.steps[-1] == 30_000
    assert series.total == len(series) == (30_000 - 102) // 2 + 1
    np.testing.assert_array_equal(series.values, series.steps * 0.5)
    assert tail.steps.tolist() == [49_990, 49_992, 49_994, 49_996, 49_998]
    assert head.steps.tolist() == [0, 2, 4]
    assert nothing is not None
    assert (len(nothing), nothing.total) == (0, 0)


def test_downsampling_keeps_at_most_max_points_with_the_first_and_last(store: Store) -> None:
    run_id = new_run(store)
    steps = np.arange(10_000)
    store.write_batch(scalars(run_id, {"loss": (steps, np.cos(steps / 50.0))}))

    series = read_scalars(store, run_id, "loss", max_points=500)

    assert series is not None
    assert 0 < len(series) <= 500
    assert series.total == 10_000
    assert series.steps[0] == 0
    assert series.steps[-1] == 9_999
    assert bool(np.all(np.diff(series.steps) > 0))
    np.testing.assert_array_equal(series.values, np.cos(series.steps / 50.0))
    np.testing.assert_array_equal(series.wall_times, 1_000.0 + series.steps)


def test_downsampling_never_hides_a_single_spike_or_nan(store: Store) -> None:
    run_id = new_run(store)
    steps = np.arange(100_000)
    values = np.full(len(steps), 0.5)
    values[31_337] = 1e6
    values[77_777] = np.nan
    for start in range(0, len(steps), 25_000):  # several batches, so several chunks
        part = slice(start, start + 25_000)
        store.write_batch(scalars(run_id, {"loss": (steps[part], values[part])}))

    series = read_scalars(store, run_id, "loss", max_points=1_000)

    assert series is not None
    assert len(series) <= 1_000
    assert series.total == 100_000
    assert 31_337 in series.steps.tolist()
    assert series.values[series.steps.tolist().index(31_337)] == 1e6
    assert series.steps[np.isnan(series.values)].tolist() == [77_777]
    assert series.steps[0] == 0
    assert series.steps[-1] == 99_999


def test_the_total_counts_distinct_steps_after_the_last_write_won(store: Store) -> None:
    run_id = new_run(store)
    store.write_batch(scalars(run_id, {"loss": (np.arange(100), np.zeros(100))}))
    store.write_batch(scalars(run_id, {"loss": (np.arange(50, 150), np.ones(100))}))

    series = read_scalars(store, run_id, "loss", max_points=10)

    assert series is not None
    assert series.total == 150
    assert len(series) <= 10


def test_one_tag_in_several_columns_of_a_batch_is_one_series(store: Store) -> None:
    run_id = new_run(store)
    first = scalars(run_id, {"loss": ([1, 2], [1.0, 2.0])}).scalars[0]
    second = scalars(run_id, {"loss": ([2, 3], [20.0, 3.0])}).scalars[0]

    store.write_batch(WriteBatch("c", 1, run_id, scalars=(first, second)))

    series = read_scalars(store, run_id, "loss")
    assert series is not None
    assert series.values.tolist() == [1.0, 20.0, 3.0]


# ---------------------------------------------------------------- histograms


def test_histograms_round_trip(store: Store) -> None:
    run_id = new_run(store)
    record = HistogramRecord(
        tag="layer1/W",
        step=3,
        wall_time=1_234.5,
        summary=HistogramSummary(
            count=2**40 + 1_000,
            min=-0.25,
            max=0.75,
            sum=12.5,
            sum_squares=99.0,
            nan_count=3,
            posinf_count=2,
            neginf_count=1,
            bucket_counts=(10, 0, 2**40, 984),
        ),
    )
    empty = HistogramRecord(
        tag="layer1/W",
        step=4,
        wall_time=1_235.0,
        summary=HistogramSummary(3, 0.0, 0.0, 0.0, 0.0, 3, 0, 0, ()),
    )

    result = store.write_batch(WriteBatch("h", 1, run_id, histograms=(record, empty)))

    assert (result.scalar_points, result.histogram_points) == (0, 2)
    series = read_histograms(store, run_id, "layer1/W")
    assert series is not None
    assert (series.run_id, series.tag, series.total, len(series)) == (run_id, "layer1/W", 2, 2)
    stored = series[0]
    assert (stored.step, stored.wall_time) == (3, 1_234.5)
    assert stored.summary == record.summary
    assert series[1].summary == empty.summary
    assert series[-1].bucket_counts == ()


@pytest.mark.parametrize("field", ["min", "max", "sum", "sum_squares"])
def test_a_histogram_summary_with_a_non_finite_statistic_is_refused(
    store: Store, field: str
) -> None:
    run_id = new_run(store)
    fields = {"min": -1.0, "max": 1.0, "sum": 0.0, "sum_squares": 2.0, field: float("nan")}
    odd = HistogramSummary(
        count=2, nan_count=0, posinf_count=0, neginf_count=0, bucket_counts=(1, 1), **fields
    )
    batch = WriteBatch("h", 1, run_id, histograms=(HistogramRecord("w", 0, 1.0, odd),))

    with pytest.raises(InvalidArgument, match=r"NaN|finite"):
        store.write_batch(batch)
    assert read_histograms(store, run_id, "w") is None


@pytest.mark.parametrize("field", ["min", "max"])
def test_a_histogram_summary_with_an_infinite_extreme_is_refused(store: Store, field: str) -> None:
    run_id = new_run(store)
    fields = {"min": -1.0, "max": 1.0, "sum": 0.0, "sum_squares": 2.0, field: float("inf")}
    odd = HistogramSummary(
        count=2, nan_count=0, posinf_count=0, neginf_count=0, bucket_counts=(1, 1), **fields
    )
    batch = WriteBatch("h", 1, run_id, histograms=(HistogramRecord("w", 0, 1.0, odd),))

    with pytest.raises(InvalidArgument, match="min and max must be finite"):
        store.write_batch(batch)
    assert read_histograms(store, run_id, "w") is None


def test_an_overflowing_histogram_sum_is_stored_as_infinity(store: Store) -> None:
    # Summing values near the float64 limit overflows; the summary keeps +/-inf.
    run_id = new_run(store)
    huge = HistogramSummary(2, -1e308, 1e308, -math.inf, math.inf, 0, 0, 0, (1, 1))
    store.write_batch(WriteBatch("h", 1, run_id, histograms=(HistogramRecord("w", 0, 1.0, huge),)))
    series = read_histograms(store, run_id, "w")
    assert series is not None
    assert (series[0].sum, series[0].sum_squares) == (-math.inf, math.inf)


def test_relogging_a_histogram_step_replaces_it(store: Store) -> None:
    run_id = new_run(store)
    store.write_batch(histograms(run_id, "w", [1, 2, 3], scale=1.0))

    store.write_batch(histograms(run_id, "w", [2], scale=5.0))

    series = read_histograms(store, run_id, "w")
    assert series is not None
    assert series.steps.tolist() == [1, 2, 3]
    assert series[1].min == -10.0
    assert series[0].min == -1.0
    assert series.total == 3


def test_the_last_histogram_of_a_step_wins_within_a_batch(store: Store) -> None:
    run_id = new_run(store)
    records = tuple(HistogramRecord("w", 1, 1.0, summary(5, float(-i), 1.0, [5])) for i in range(3))

    store.write_batch(WriteBatch("h", 1, run_id, histograms=records))

    series = read_histograms(store, run_id, "w")
    assert series is not None
    assert len(series) == 1
    assert series[0].min == -2.0


def test_max_steps_samples_histograms_evenly_keeping_the_last(store: Store) -> None:
    run_id = new_run(store)
    store.write_batch(histograms(run_id, "w", range(0, 1_000, 10)))

    series = read_histograms(store, run_id, "w", max_steps=7)

    assert series is not None
    assert len(series) == 7
    assert series.total == 100
    steps = series.steps.tolist()
    assert steps == sorted(set(steps))
    assert steps[0] == 0
    assert steps[-1] == 990
    gaps = np.diff(steps)
    assert gaps.max() - gaps.min() <= 10  # evenly spread, up to one stored step


def test_min_step_selects_histograms(store: Store) -> None:
    run_id = new_run(store)
    store.write_batch(histograms(run_id, "w", range(10)))

    series = read_histograms(store, run_id, "w", min_step=7)

    assert series is not None
    assert series.steps.tolist() == [7, 8, 9]
    assert series.total == 3


# ---------------------------------------------------------------- graphs


GRAPH = [
    GraphNode(name="x", op="Placeholder", shape=(-1, 64), dtype="float32"),
    GraphNode(name="W", op="Variable", shape=(64, 10), dtype="float32"),
    GraphNode(name="matmul", op="MatMul", inputs=("x", "W"), shape=(-1, 10)),
    GraphNode(
        name="gradients/softmax_grad",
        op="SoftmaxGrad",
        inputs=("matmul",),
        attributes={"axis": "-1", "note": "ünï"},
    ),
]


def test_a_graph_round_trips(store: Store) -> None:
    run_id = new_run(store)
    assert store.get_graph(run_id) is None

    store.set_graph(run_id, GRAPH)

    assert store.get_graph(run_id) == GRAPH


def test_setting_a_graph_again_replaces_it(store: Store) -> None:
    run_id = new_run(store)
    store.set_graph(run_id, GRAPH)
    smaller = [GraphNode(name="y", op="Softmax")]

    store.set_graph(run_id, smaller)

    assert store.get_graph(run_id) == smaller
    other = store.start_run("digits", "other", None, 1.0).run.id
    assert store.get_graph(other) is None


# ---------------------------------------------------------------- names


@pytest.mark.parametrize("name", ODD_NAMES)
def test_names_are_stored_verbatim(store: Store, name: str) -> None:
    started = store.start_run(name, name, {name: name}, 1.0)
    run_id = started.run.id
    store.write_batch(scalars(run_id, {name: ([1], [1.0])}))
    store.write_batch(histograms(run_id, name, [1]))
    store.set_graph(run_id, [GraphNode(name=name, op=name, attributes={name: name})])

    assert store.list_experiments() == [name]
    run = store.list_runs(name)[0]
    assert (run.name, dict(run.params)) == (name, {name: name})
    assert {t.name for t in store.list_tags(run_id)} == {name}
    assert read_scalars(store, run_id, name) is not None
    assert read_histograms(store, run_id, name) is not None
    assert store.get_graph(run_id) == [GraphNode(name=name, op=name, attributes={name: name})]
    assert store.start_run(name, name, None, 2.0, resume=True).resumed


def test_a_long_series_is_read_whole(store: Store) -> None:
    run_id = new_run(store)
    # Several chunks, in order and out of order, with re-logged steps.
    store.write_batch(scalars(run_id, {"loss": (np.arange(0, 20_000), np.arange(0, 20_000))}))
    store.write_batch(scalars(run_id, {"loss": (np.arange(30_000, 40_000), np.zeros(10_000))}))
    store.write_batch(scalars(run_id, {"loss": (np.arange(20_000, 30_000), np.ones(10_000))}))
    store.write_batch(scalars(run_id, {"loss": (np.arange(5_000, 6_000), np.full(1_000, -1.0))}))
    whole = read_scalars(store, run_id, "loss")
    assert whole is not None
    assert (len(whole), whole.total, whole.next_step) == (40_000, 40_000, None)
    np.testing.assert_array_equal(whole.steps, np.arange(40_000))
    expected = np.concatenate(
        [np.arange(5_000), np.full(1_000, -1.0), np.arange(6_000, 20_000), np.ones(10_000)]
    )
    np.testing.assert_array_equal(whole.values[:30_000], expected)
    np.testing.assert_array_equal(whole.values[30_000:], np.zeros(10_000))


def test_a_read_is_batched_over_runs_and_tags_and_answers_the_pairs_that_exist(
    store: Store,
) -> None:
    first = new_run(store, name="first")
    second = new_run(store, name="second")
    store.write_batch(scalars(first, {"loss": ([1, 2], [1.0, 2.0]), "acc": ([1], [0.5])}))
    store.write_batch(scalars(second, {"acc": ([3], [0.7])}))
    store.write_batch(histograms(second, "w", [1, 2]))
    store.write_batch(histograms(first, "loss", [5]))

    found = store.read_scalars(run_ids=[second, first, second], tags=["loss", "acc", "w"])
    assert list(found) == [(second, "acc"), (first, "loss"), (first, "acc")]  # run-major
    assert all(s.run_id == r and s.tag == t for (r, t), s in found.items())
    assert found[(first, "loss")].values.tolist() == [1.0, 2.0]
    assert found[(second, "acc")].values.tolist() == [0.7]

    hists = store.read_histograms(run_ids=[first, second], tags=["w", "loss", "acc"])
    assert list(hists) == [(first, "loss"), (second, "w")]
    assert (hists[(second, "w")].total, hists[(first, "loss")].total) == (2, 1)

    assert store.read_scalars(run_ids=[first], tags=["nothing"]) == {}
    with pytest.raises(NotFound):
        store.read_scalars(run_ids=[first, UNKNOWN_RUN], tags=["loss"])
    with pytest.raises(NotFound):
        store.read_histograms(run_ids=[UNKNOWN_RUN, second], tags=["w"])


@pytest.mark.parametrize("empty", ["run_ids", "tags"])
def test_a_read_of_no_runs_or_no_tags_is_refused(store: Store, empty: str) -> None:
    run_id = new_run(store)
    keys: dict[str, list[Any]] = {"run_ids": [run_id], "tags": ["loss"], empty: []}
    with pytest.raises(InvalidArgument, match=f"{empty} must not be empty"):
        store.read_scalars(run_ids=keys["run_ids"], tags=keys["tags"])
    with pytest.raises(InvalidArgument, match=f"{empty} must not be empty"):
        store.read_histograms(run_ids=keys["run_ids"], tags=keys["tags"])


# ---------------------------------------------------------------- housekeeping


def fill_run(store: Store, name: str, scale: float) -> int:
    """A run holding scalars, histograms, a graph and tags."""
    run_id = store.start_run("digits", name, {"scale": scale}, 100.0).run.id
    store.write_batch(scalars(run_id, {"loss": ([1, 2, 3], [scale, 2 * scale, 3 * scale])}))
    store.write_batch(histograms(run_id, "w", [1, 2], scale=scale))
    store.set_graph(run_id, [GraphNode(name=name, op="Input")])
    store.set_run_tags(run_id, ["baseline", name])
    return run_id


def test_deleting_a_run_removes_everything_it_holds_and_nothing_else(store: Store) -> None:
    doomed = fill_run(store, "doomed", 1.0)
    kept = fill_run(store, "kept", 2.0)

    store.delete_run(doomed)

    assert [(r.id, r.tags) for r in store.list_runs("digits")] == [(kept, ("baseline", "kept"))]
    for read in (
        lambda: store.list_tags(doomed),
        lambda: read_scalars(store, doomed, "loss"),
        lambda: read_histograms(store, doomed, "w"),
        lambda: store.get_graph(doomed),
        lambda: store.write_batch(scalars(doomed, {"loss": ([4], [4.0])})),
    ):
        with pytest.raises(NotFound):
            read()
    loss = read_scalars(store, kept, "loss")
    weights = read_histograms(store, kept, "w")
    assert loss is not None
    assert loss.values.tolist() == [2.0, 4.0, 6.0]
    assert weights is not None
    assert weights.steps.tolist() == [1, 2]
    assert store.get_graph(kept) == [GraphNode(name="kept", op="Input")]
    with pytest.raises(NotFound):
        store.delete_run(doomed)  # a second time


def test_a_deleted_runs_name_starts_a_new_empty_run(store: Store) -> None:
    doomed = fill_run(store, "again", 1.0)
    store.delete_run(doomed)

    started = store.start_run("digits", "again", None, 500.0)

    assert not started.resumed
    assert started.run.id != doomed
    assert started.run.tags == ()
    assert store.list_tags(started.run.id) == []
    assert store.get_graph(started.run.id) is None


def test_an_experiment_without_runs_left_is_no_longer_listed(store: Store) -> None:
    only = store.start_run("lonely", "r", None, 1.0).run.id
    store.start_run("digits", "r", None, 1.0)

    store.delete_run(only)

    assert store.list_experiments() == ["digits"]
    assert store.list_runs("lonely") == []
    store.start_run("lonely", "back", None, 2.0)
    assert store.list_experiments() == ["digits", "lonely"]


def test_deleting_an_experiment_deletes_its_runs_and_counts_them(store: Store) -> None:
    doomed = [fill_run(store, name, 1.0) for name in ("a", "b")]
    kept = store.start_run("other", "a", None, 1.0).run.id
    store.write_batch(scalars(kept, {"loss": ([1], [1.0])}))

    assert store.delete_experiment("digits") == 2

    assert store.list_experiments() == ["other"]
    assert store.list_runs("digits") == []
    for run_id in doomed:
        with pytest.raises(NotFound):
            store.list_tags(run_id)
    assert [r.id for r in store.list_runs("other")] == [kept]
    assert read_scalars(store, kept, "loss") is not None
    with pytest.raises(NotFound, match="digits"):
        store.delete_experiment("digits")
    with pytest.raises(NotFound, match="nobody-made-this"):
        store.delete_experiment("nobody-made-this")


def test_a_renamed_run_keeps_its_data_and_resumes_under_its_new_name(store: Store) -> None:
    run_id = fill_run(store, "old", 1.0)

    store.rename_run(run_id, "new")

    [run] = store.list_runs("digits")
    assert (run.id, run.name, run.tags) == (run_id, "new", ("baseline", "old"))
    assert read_scalars(store, run_id, "loss") is not None
    resumed = store.start_run("digits", "new", None, 600.0, resume=True)
    assert resumed.resumed
    assert resumed.run.id == run_id
    assert resumed.run.tags == ("baseline", "old")
    fresh = store.start_run("digits", "old", None, 600.0)
    assert not fresh.resumed


def test_renaming_to_a_name_taken_in_the_experiment_is_refused(store: Store) -> None:
    first = store.start_run("digits", "first", None, 1.0).run.id
    store.start_run("digits", "second", None, 1.0)
    elsewhere = store.start_run("other", "third", None, 1.0).run.id

    with pytest.raises(InvalidArgument, match="run name 'second' is taken in experiment 'digits'"):
        store.rename_run(first, "second")

    assert [r.name for r in store.list_runs("digits")] == ["first", "second"]
    store.rename_run(first, "first")  # its own name: nothing to do
    store.rename_run(elsewhere, "second")  # another experiment's names do not count
    assert [r.name for r in store.list_runs("other")] == ["second"]


@pytest.mark.parametrize("name", ["", "x" * 257, "tab\there"])
def test_renaming_to_a_bad_name_is_an_invalid_argument(store: Store, name: str) -> None:
    run_id = new_run(store)

    with pytest.raises(InvalidArgument, match="new_name"):
        store.rename_run(run_id, name)
    assert store.list_runs("digits")[0].name == "lr=0.5"


def test_run_tags_round_trip_sorted_without_repeats(store: Store) -> None:
    run_id = new_run(store)
    store.start_run("digits", "other", None, 1.0)  # untagged
    tags = [*ODD_NAMES, "baseline", ODD_NAMES[0]]

    stored = store.set_run_tags(run_id, tags)

    assert stored == tuple(sorted(set(tags)))
    assert len(stored) == len(ODD_NAMES) + 1
    runs = store.list_runs("digits")
    assert [r.tags for r in runs] == [stored, ()]
    assert store.start_run("digits", "lr=0.5", None, 2.0, resume=True).run.tags == stored
    assert store.set_run_tags(run_id, ["only"]) == ("only",)  # replaces the set
    assert store.list_runs("digits")[0].tags == ("only",)
    assert store.set_run_tags(run_id, []) == ()
    assert [r.tags for r in store.list_runs("digits")] == [(), ()]


@pytest.mark.parametrize(
    ("tags", "field"),
    [
        (["ok", ""], "tags[1]"),
        (["bad\nline"], "tags[0]"),
        (["x" * 257], "tags[0]"),
        ([f"t{i}" for i in range(65)], "tags"),
    ],
)
def test_bad_run_tags_are_refused_and_keep_the_stored_ones(
    store: Store, tags: list[str], field: str
) -> None:
    run_id = new_run(store)
    store.set_run_tags(run_id, ["kept"])

    with pytest.raises(InvalidArgument) as info:
        store.set_run_tags(run_id, tags)

    assert field in str(info.value)
    assert store.list_runs("digits")[0].tags == ("kept",)


def test_sixty_four_run_tags_are_allowed(store: Store) -> None:
    run_id = new_run(store)
    tags = [f"tag-{i:02d}" for i in range(64)]

    assert store.set_run_tags(run_id, tags) == tuple(tags)


# ---------------------------------------------------------------- liveness


def status_of(store: Store, run_id: int) -> str:
    return next(r.status for r in store.list_runs("digits") if r.id == run_id)


def test_a_running_run_silent_past_the_timeout_is_listed_crashed(
    store: Store, clock: Clock
) -> None:
    run_id = store.start_run("digits", "r", None, 1_000.0).run.id

    clock.now = 1_000.0 + CRASHED_AFTER - 1
    assert status_of(store, run_id) == "running"
    clock.now = 1_000.0 + CRASHED_AFTER + 1
    assert status_of(store, run_id) == "crashed"

    # Only reported: a late client still finishes it.
    store.finish_run(run_id, "finished", 2_000.0)
    assert status_of(store, run_id) == "finished"


def test_a_write_makes_a_crashed_run_running_again(store: Store, clock: Clock) -> None:
    run_id = store.start_run("digits", "r", None, 1_000.0).run.id
    clock.now = 5_000.0
    assert status_of(store, run_id) == "crashed"

    store.write_batch(scalars(run_id, {"loss": ([0], [1.0])}, wall_time=4_990.0))

    assert status_of(store, run_id) == "running"
    clock.now = 4_990.0 + CRASHED_AFTER + 1
    assert status_of(store, run_id) == "crashed"


def test_a_heartbeat_makes_a_crashed_run_running_at_the_stores_time(
    store: Store, clock: Clock
) -> None:
    run_id = store.start_run("digits", "r", None, 1_000.0).run.id
    clock.now = 5_000.0
    assert status_of(store, run_id) == "crashed"

    store.heartbeat(run_id)

    [run] = store.list_runs("digits")
    assert (run.status, run.updated_at) == ("running", 5_000.0)
    clock.now = 3_000.0  # a clock that went back never moves updated_at back
    store.heartbeat(run_id)
    assert store.list_runs("digits")[0].updated_at == 5_000.0


def test_resuming_a_crashed_run_makes_it_running(store: Store, clock: Clock) -> None:
    run_id = store.start_run("digits", "r", None, 1_000.0).run.id
    clock.now = 5_000.0

    resumed = store.start_run("digits", "r", None, 5_000.0, resume=True)

    assert resumed.run.id == run_id
    assert status_of(store, run_id) == "running"


def test_renaming_or_tagging_a_crashed_run_leaves_it_crashed(store: Store, clock: Clock) -> None:
    run_id = store.start_run("digits", "r", None, 1_000.0).run.id
    clock.now = 5_000.0

    store.rename_run(run_id, "renamed")
    store.set_run_tags(run_id, ["look"])

    [run] = store.list_runs("digits")
    assert (run.name, run.status, run.tags, run.updated_at) == (
        "renamed",
        "crashed",
        ("look",),
        1_000.0,
    )


def test_finished_runs_are_never_listed_crashed(store: Store, clock: Clock) -> None:
    for status in ("finished", "failed", "killed"):
        run_id = store.start_run("digits", status, None, 1_000.0).run.id
        store.finish_run(run_id, status, 1_001.0)
    clock.now = 1e9

    assert [r.status for r in store.list_runs("digits")] == ["finished", "failed", "killed"]


@pytest.mark.parametrize("status", ["running", "crashed"])
def test_a_run_cannot_be_finished_running_or_crashed(store: Store, status: str) -> None:
    run_id = new_run(store)

    with pytest.raises(InvalidArgument, match="status"):
        store.finish_run(run_id, status, 160.0)
    assert store.list_runs("digits")[0].finished_at is None
