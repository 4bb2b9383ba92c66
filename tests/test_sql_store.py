"""What is specific to the SQL implementation of the store: SQLite settings,
migrating at once, the chunk layout, concurrent writers and large series."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select
from store_reads import read_scalars

from trainboard.errors import InvalidArgument
from trainboard.types import (
    GraphNode,
    HistogramRecord,
    HistogramSummary,
    ScalarColumns,
    WriteBatch,
)
from trainboard_server.sql_store import SqlStore
from trainboard_server.storage.batches import store_batch
from trainboard_server.storage.engine import WRITE_OPTION
from trainboard_server.storage.models import (
    graphs,
    histograms,
    run_tags,
    runs,
    scalar_chunks,
    series,
)
from trainboard_server.storage.scalars import CHUNK_POINTS

DEADLINE_S = 120  # for child processes; they finish in seconds


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    opened = SqlStore.from_url(db_url)
    try:
        yield opened
    finally:
        opened.close()


_sequence = iter(range(1, 10**9))


def batch(
    run_id: int, tag: str, steps: np.ndarray, values: np.ndarray | None = None, client: str = "c"
) -> WriteBatch:
    steps = np.asarray(steps, dtype=np.int64)
    values = steps * 0.5 if values is None else values
    column = ScalarColumns(tag, steps, 1_000.0 + steps.astype(np.float64), values)
    return WriteBatch(client, next(_sequence), run_id, scalars=(column,))


def chunk_rows(store: SqlStore, run_id: int, tag: str) -> list[tuple[int, int, int, int]]:
    """(seq, min_step, max_step, count) of the series' chunks, in seq order."""
    c = scalar_chunks.c
    statement = (
        select(c.seq, c.min_step, c.max_step, c["count"])
        .join(series, series.c.id == c.series_id)
        .where(series.c.run_id == run_id, series.c.tag == tag)
        .order_by(c.seq)
    )
    with store.engine.connect() as connection:
        return [
            (seq, first, last, count) for seq, first, last, count in connection.execute(statement)
        ]


START_SIGNAL = """
import sys
print("ready", flush=True)
sys.stdin.readline()  # every sibling is ready too: start together
"""


def run_processes_together(tmp_path: Path, body: str, args: list[list[str]]) -> None:
    """Runs ``body`` (Python, after START_SIGNAL) in one process per argument list,
    released at once when all have imported what they need; asserts they all exit 0."""
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(body).replace("# START", START_SIGNAL))
    children = [
        subprocess.Popen(
            [sys.executable, str(script), *arguments],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for arguments in args
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.close()
        assert [child.wait(timeout=DEADLINE_S) for child in children] == [0] * len(children)
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
            if child.stdout is not None:
                child.stdout.close()


def run_in_threads(count: int, work: Callable[[int], None]) -> None:
    """Runs ``work(i)`` in ``count`` threads and re-raises the first error."""
    errors: list[BaseException] = []

    def target(index: int) -> None:
        try:
            work(index)
        except BaseException as exc:  # reported by the test thread below
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=DEADLINE_S)
        assert not thread.is_alive(), "a writer thread hung"
    if errors:
        raise errors[0]


# ---------------------------------------------------------------- SQLite settings


def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_url: str) -> None:
    store = SqlStore.from_url(sqlite_url)
    try:
        with store.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar_one() >= 1000
    finally:
        store.close()


def test_a_reader_sees_committed_data_while_a_writer_is_mid_transaction(
    sqlite_url: str,
) -> None:
    store = SqlStore.from_url(sqlite_url)
    try:
        run_id = store.start_run("e", "r", None, 1.0).run.id
        store.write_batch(batch(run_id, "loss", np.arange(10)))
        with store.engine.connect() as connection:
            writer = connection.execution_options(**{WRITE_OPTION: True})
            with writer.begin() as transaction:  # BEGIN IMMEDIATE: holds the write lock
                store_batch(writer, batch(run_id, "loss", np.arange(10, 20)))
                during = read_scalars(store, run_id, "loss")
                transaction.rollback()
        assert during is not None
        assert during.total == 10
    finally:
        store.close()


def test_a_sqlite_file_in_a_missing_directory_is_created(tmp_path: Path) -> None:
    store = SqlStore.from_url(f"sqlite:///{tmp_path / 'a' / 'b' / 'trainboard.db'}")
    store.close()
    assert (tmp_path / "a" / "b" / "trainboard.db").exists()


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///:memory:", "mysql://localhost/x", "not a url"]
)
def test_urls_other_than_a_sqlite_file_or_postgresql_are_refused(url: str) -> None:
    with pytest.raises(InvalidArgument, match="db"):
        SqlStore.from_url(url)


def test_a_postgresql_url_is_driven_by_psycopg(postgres_url: str) -> None:
    plain = postgres_url.replace("postgresql+psycopg://", "postgresql://", 1)
    store = SqlStore.from_url(plain)
    try:
        assert store.engine.dialect.driver == "psycopg"
        assert store.list_experiments() == []
    finally:
        store.close()


# ---------------------------------------------------------------- migrating at once


def test_processes_opening_a_fresh_database_at_once_migrate_it_once(
    empty_db_url: str, tmp_path: Path
) -> None:
    body = """
        import sys
        from trainboard_server.sql_store import SqlStore
        # START
        store = SqlStore.from_url(sys.argv[1])
        store.start_run("race", sys.argv[2], None, 1.0)
        store.close()
    """

    run_processes_together(tmp_path, body, [[empty_db_url, f"run-{i}"] for i in range(4)])

    store = SqlStore.from_url(empty_db_url)
    try:
        assert sorted(r.name for r in store.list_runs("race")) == [f"run-{i}" for i in range(4)]
    finally:
        store.close()


# ---------------------------------------------------------------- chunks


def test_small_in_order_batches_fill_few_full_chunks(store: SqlStore) -> None:
    run_id = store.start_run("e", "r", None, 1.0).run.id
    total = 2 * CHUNK_POINTS + 100
    for start in range(0, total, 100):
        store.write_batch(batch(run_id, "loss", np.arange(start, min(start + 100, total))))

    chunks = chunk_rows(store, run_id, "loss")

    assert [count for *_, count in chunks] == [CHUNK_POINTS, CHUNK_POINTS, 100]
    assert [(first, last) for _, first, last, _ in chunks] == [
        (0, CHUNK_POINTS - 1),
        (CHUNK_POINTS, 2 * CHUNK_POINTS - 1),
        (2 * CHUNK_POINTS, total - 1),
    ]
    loss = read_scalars(store, run_id, "loss")
    assert loss is not None
    np.testing.assert_array_equal(loss.steps, np.arange(total))


def test_a_large_batch_is_split_into_full_chunks(store: SqlStore) -> None:
    run_id = store.start_run("e", "r", None, 1.0).run.id

    store.write_batch(batch(run_id, "loss", np.arange(3 * CHUNK_POINTS + 1)))

    counts = [count for *_, count in chunk_rows(store, run_id, "loss")]
    assert counts == [CHUNK_POINTS, CHUNK_POINTS, CHUNK_POINTS, 1]


def test_relogged_steps_behind_a_full_tail_add_a_chunk_that_wins_on_read(
    store: SqlStore,
) -> None:
    run_id = store.start_run("e", "r", None, 1.0).run.id
    store.write_batch(batch(run_id, "loss", np.arange(2 * CHUNK_POINTS)))

    store.write_batch(
        batch(run_id, "loss", np.array([5, CHUNK_POINTS + 7]), np.array([-1.0, -2.0]))
    )

    chunks = chunk_rows(store, run_id, "loss")
    assert len(chunks) == 3
    assert chunks[-1][1:] == (5, CHUNK_POINTS + 7, 2)
    loss = read_scalars(store, run_id, "loss")
    assert loss is not None
    assert loss.total == 2 * CHUNK_POINTS
    expected = np.arange(2 * CHUNK_POINTS) * 0.5
    expected[[5, CHUNK_POINTS + 7]] = [-1.0, -2.0]
    np.testing.assert_array_equal(loss.values, expected)
    window = read_scalars(store, run_id, "loss", min_step=CHUNK_POINTS, max_step=CHUNK_POINTS + 9)
    assert window is not None
    assert window.values[7] == -2.0
    assert window.total == 10


def test_relogged_steps_are_merged_into_a_small_tail(store: SqlStore) -> None:
    run_id = store.start_run("e", "r", None, 1.0).run.id
    store.write_batch(batch(run_id, "loss", np.arange(CHUNK_POINTS + 50)))  # tail holds 50

    for step in (3, CHUNK_POINTS + 10, CHUNK_POINTS + 80):  # resume-like re-logs and a new step
        store.write_batch(batch(run_id, "loss", np.array([step]), np.array([-float(step)])))

    chunks = chunk_rows(store, run_id, "loss")
    assert len(chunks) == 2
    assert chunks[-1][1:] == (3, CHUNK_POINTS + 80, 52)
    loss = read_scalars(store, run_id, "loss")
    assert loss is not None
    assert loss.total == CHUNK_POINTS + 51
    assert loss.values[3] == -3.0
    assert loss.values[CHUNK_POINTS + 10] == -float(CHUNK_POINTS + 10)
    assert loss.steps[-1] == CHUNK_POINTS + 80


def test_chunks_summarise_their_finite_values(store: SqlStore) -> None:
    run_id = store.start_run("e", "r", None, 1.0).run.id
    store.write_batch(batch(run_id, "a", np.arange(4), np.array([np.nan, -3.0, np.inf, 7.0])))
    store.write_batch(batch(run_id, "b", np.arange(2), np.array([np.nan, -np.inf])))

    c = scalar_chunks.c
    with store.engine.connect() as connection:
        rows = connection.execute(
            select(series.c.tag, c.min_value, c.max_value)
            .join(series, series.c.id == c.series_id)
            .order_by(series.c.tag)
        ).all()

    assert [tuple(row) for row in rows] == [("a", -3.0, 7.0), ("b", None, None)]


def test_evenly_spaced_steps_are_stored_without_a_steps_array(store: SqlStore) -> None:
    run_id = store.start_run("e", "r", None, 1.0).run.id
    store.write_batch(batch(run_id, "even", np.arange(0, 5000, 5)))
    store.write_batch(batch(run_id, "uneven", np.array([0, 1, 3, 7, 15])))

    c = scalar_chunks.c
    with store.engine.connect() as connection:
        rows = connection.execute(
            select(series.c.tag, c.steps_packed).join(series, series.c.id == c.series_id)
        )
        sizes = {tag: len(packed) for tag, packed in rows}

    assert sizes == {"even": 0, "uneven": 5 * 8}
    even = read_scalars(store, run_id, "even")
    uneven = read_scalars(store, run_id, "uneven")
    assert even is not None
    assert uneven is not None
    np.testing.assert_array_equal(even.steps, np.arange(0, 5000, 5))
    assert uneven.steps.tolist() == [0, 1, 3, 7, 15]


def test_a_batch_with_more_tags_than_one_in_list_holds_is_stored(store: SqlStore) -> None:
    run_id = store.start_run("e", "r", None, 1.0).run.id
    tags = [f"layer{i}/grad_norm" for i in range(1_200)]

    for step in range(2):  # the second batch appends to 1,200 tails
        columns = tuple(
            ScalarColumns(tag, np.array([step]), np.array([1.0]), np.array([float(i)]))
            for i, tag in enumerate(tags)
        )
        store.write_batch(WriteBatch("c", step + 1, run_id, scalars=columns))

    assert len(store.list_tags(run_id)) == 1_200
    last = read_scalars(store, run_id, tags[-1])
    assert last is not None
    assert last.steps.tolist() == [0, 1]
    assert last.values.tolist() == [1_199.0, 1_199.0]


def test_a_million_point_series_reads_back_correctly(store: SqlStore) -> None:
    run_id = store.start_run("e", "r", None, 1.0).run.id
    rng = np.random.default_rng(3)
    values = rng.normal(size=1_000_000)
    for start in range(0, 1_000_000, 1_000):
        part = np.arange(start, start + 1_000)
        store.write_batch(batch(run_id, "big", part, values[part]))

    whole = read_scalars(store, run_id, "big")
    chart = read_scalars(store, run_id, "big", max_points=2_000)

    assert whole is not None
    assert chart is not None
    assert whole.total == chart.total == 1_000_000
    np.testing.assert_array_equal(whole.steps, np.arange(1_000_000))
    np.testing.assert_array_equal(whole.values, values)
    np.testing.assert_array_equal(whole.wall_times, 1_000.0 + np.arange(1_000_000))
    assert len(chart) <= 2_000
    np.testing.assert_array_equal(chart.values, values[chart.steps])
    assert chart.values.max() == values.max()
    assert chart.values.min() == values.min()


def test_a_full_resolution_read_comes_in_pages_that_join_into_the_whole(
    store: SqlStore,
) -> None:
    # Paging is the server's (read_scalars_page), not the Store contract's.
    run_id = store.start_run("e", "r", None, 1.0).run.id
    # Several chunks, in order and out of order, with re-logged steps.
    store.write_batch(batch(run_id, "loss", np.arange(0, 20_000)))
    store.write_batch(batch(run_id, "loss", np.arange(30_000, 40_000), np.zeros(10_000)))
    store.write_batch(batch(run_id, "loss", np.arange(20_000, 30_000), np.ones(10_000)))
    store.write_batch(batch(run_id, "loss", np.arange(5_000, 6_000), np.full(1_000, -1.0)))
    whole = store.read_scalars_page(run_id, "loss")
    assert whole is not None
    assert whole.next_step is None
    assert whole.total == 40_000

    pages = []
    cursor: int | None = 0
    while cursor is not None:
        page = store.read_scalars_page(run_id, "loss", min_step=cursor, limit=7_000)
        assert page is not None
        assert 0 < len(page) <= 7_000
        assert page.total == len(page)
        pages.append(page)
        cursor = page.next_step
    assert len(pages) >= 6
    np.testing.assert_array_equal(np.concatenate([p.steps for p in pages]), whole.steps)
    np.testing.assert_array_equal(np.concatenate([p.values for p in pages]), whole.values)
    np.testing.assert_array_equal(np.concatenate([p.wall_times for p in pages]), whole.wall_times)
    assert store.read_scalars_page(run_id, "missing", limit=10) is None


def test_a_page_limit_is_ignored_by_downsampled_reads(store: SqlStore) -> None:
    run_id = store.start_run("e", "r", None, 1.0).run.id
    store.write_batch(batch(run_id, "loss", np.arange(10_000)))
    series = store.read_scalars_page(run_id, "loss", max_points=100, limit=10)
    assert series is not None
    assert 10 < len(series) <= 100
    assert (series.total, series.next_step) == (10_000, None)


# ---------------------------------------------------------------- concurrency


def test_writer_threads_on_separate_stores_lose_no_point(db_url: str) -> None:
    writers, batches, per_batch = 4, 40, 50
    setup = SqlStore.from_url(db_url)
    run_id = setup.start_run("e", "r", None, 1.0).run.id
    setup.close()

    start = threading.Barrier(writers, timeout=DEADLINE_S)

    def write(index: int) -> None:
        own = SqlStore.from_url(db_url)
        try:
            start.wait()
            for b in range(batches):
                # Interleaved steps: every batch lands inside the others' step ranges.
                first = (b * per_batch) * writers + index
                steps = np.arange(first, first + per_batch * writers, writers)
                own.write_batch(batch(run_id, "shared", steps, client=f"thread-{index}"))
        finally:
            own.close()

    run_in_threads(writers, write)

    reader = SqlStore.from_url(db_url)
    try:
        shared = read_scalars(reader, run_id, "shared")
        assert shared is not None
        assert shared.total == writers * batches * per_batch
        np.testing.assert_array_equal(shared.steps, np.arange(writers * batches * per_batch))
        np.testing.assert_array_equal(shared.values, shared.steps * 0.5)
    finally:
        reader.close()


def test_writer_processes_lose_no_point(db_url: str, tmp_path: Path) -> None:
    writers, batches, per_batch = 3, 60, 40
    setup = SqlStore.from_url(db_url)
    run_id = setup.start_run("e", "r", None, 1.0).run.id
    setup.close()
    body = f"""
        import sys
        import numpy as np
        from trainboard.types import ScalarColumns, WriteBatch
        from trainboard_server.sql_store import SqlStore
        url, index = sys.argv[1], int(sys.argv[2])
        store = SqlStore.from_url(url)
        # START
        for b in range({batches}):
            first = b * {per_batch} * {writers} + index
            steps = np.arange(first, first + {per_batch} * {writers}, {writers})
            column = ScalarColumns("shared", steps, steps * 1.0, steps * 0.5)
            store.write_batch(WriteBatch(f"proc-{{index}}", b + 1, {run_id}, (column,)))
        store.close()
    """

    run_processes_together(tmp_path, body, [[db_url, str(i)] for i in range(writers)])

    reader = SqlStore.from_url(db_url)
    try:
        shared = read_scalars(reader, run_id, "shared")
        assert shared is not None
        np.testing.assert_array_equal(shared.steps, np.arange(writers * batches * per_batch))
        np.testing.assert_array_equal(shared.values, shared.steps * 0.5)
    finally:
        reader.close()


def test_a_batch_sent_twice_at_once_is_stored_once(store: SqlStore) -> None:
    run_id = store.start_run("e", "r", None, 1.0).run.id
    same = batch(run_id, "loss", np.arange(100), client="retrying-client")
    results: list[bool] = []

    run_in_threads(6, lambda _: results.append(store.write_batch(same).duplicate))

    assert sorted(results) == [False] + [True] * 5


def test_resuming_one_run_from_many_threads_creates_it_once(db_url: str) -> None:
    stores = [SqlStore.from_url(db_url) for _ in range(4)]
    ids: list[int] = []
    try:
        run_in_threads(
            4, lambda i: ids.append(stores[i].start_run("e", "r", None, 1.0, resume=True).run.id)
        )
        assert len(set(ids)) == 1
        assert [r.id for r in stores[0].list_runs("e")] == ids[:1]
    finally:
        for opened in stores:
            opened.close()


def test_starting_one_name_from_many_threads_makes_distinct_runs(db_url: str) -> None:
    stores = [SqlStore.from_url(db_url) for _ in range(4)]
    names: list[str] = []
    try:
        run_in_threads(4, lambda i: names.append(stores[i].start_run("e", "r", None, 1.0).run.name))
        assert sorted(names) == ["r", "r (2)", "r (3)", "r (4)"]
        assert len(stores[0].list_runs("e")) == 4
    finally:
        for opened in stores:
            opened.close()


def test_a_committed_batch_survives_the_writer_being_killed(db_url: str, tmp_path: Path) -> None:
    setup = SqlStore.from_url(db_url)
    run_id = setup.start_run("e", "r", None, 1.0).run.id
    setup.close()
    script = tmp_path / "killed.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import os, signal, sys
            import numpy as np
            from trainboard.types import ScalarColumns, WriteBatch
            from trainboard_server.sql_store import SqlStore

            store = SqlStore.from_url(sys.argv[1])
            steps = np.arange(5000)
            column = ScalarColumns("loss", steps, steps * 1.0, steps * 2.0)
            store.write_batch(WriteBatch("doomed", 1, {run_id}, (column,)))
            os.kill(os.getpid(), signal.SIGKILL)  # no close, no checkpoint, no atexit
            """
        )
    )

    child = subprocess.run([sys.executable, str(script), db_url], timeout=DEADLINE_S)

    assert child.returncode == -9
    reader = SqlStore.from_url(db_url)
    try:
        loss = read_scalars(reader, run_id, "loss")
        assert loss is not None
        assert loss.total == 5000
        np.testing.assert_array_equal(loss.values, np.arange(5000) * 2.0)
    finally:
        reader.close()


# ---------------------------------------------------------------- deleting


def row_counts(store: SqlStore) -> dict[str, int]:
    with store.engine.connect() as connection:
        return {
            table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (runs, run_tags, series, scalar_chunks, histograms, graphs)
        }


def test_deleting_runs_leaves_no_row_of_theirs_behind(store: SqlStore) -> None:
    ids = []
    for name in ("a", "b"):
        run_id = store.start_run("e", name, None, 1.0).run.id
        store.write_batch(batch(run_id, "loss", np.arange(3 * CHUNK_POINTS)))
        summary = HistogramSummary(2, 0.0, 1.0, 1.0, 1.0, 0, 0, 0, (1, 1))
        record = HistogramRecord("w", 0, 1.0, summary)
        store.write_batch(WriteBatch("h", next(_sequence), run_id, histograms=(record,)))
        store.set_graph(run_id, [GraphNode(name="x", op="Input")])
        store.set_run_tags(run_id, ["t1", "t2"])
        ids.append(run_id)
    before = row_counts(store)

    store.delete_run(ids[0])

    after = row_counts(store)
    assert {name: before[name] - count for name, count in after.items()} == {
        name: count // 2 for name, count in before.items()
    }
    assert store.delete_experiment("e") == 1
    assert set(row_counts(store).values()) == {0}


def test_a_sqlite_run_id_is_never_handed_out_twice(sqlite_url: str) -> None:
    store = SqlStore.from_url(sqlite_url)
    try:
        newest = store.start_run("e", "newest", None, 1.0).run.id
        store.delete_run(newest)
        assert store.start_run("e", "next", None, 2.0).run.id > newest
    finally:
        store.close()


# ---------------------------------------------------------------- arguments


def test_the_store_checks_its_arguments(store: SqlStore) -> None:
    run_id = store.start_run("e", "r", None, 1.0).run.id
    steps = np.arange(3)
    good = ScalarColumns("x", steps, steps * 1.0, steps * 1.0)

    def write(column: ScalarColumns) -> None:
        store.write_batch(WriteBatch("c", 1, run_id, scalars=(column,)))

    with pytest.raises(InvalidArgument, match="max_points"):
        store.read_scalars(run_ids=[run_id], tags=["x"], max_points=0)
    with pytest.raises(InvalidArgument, match="max_steps"):
        store.read_histograms(run_ids=[run_id], tags=["x"], max_steps=-1)
    with pytest.raises(InvalidArgument, match="limit"):
        store.read_scalars_page(run_id, "x", limit=0)
    with pytest.raises(InvalidArgument, match="status"):
        store.finish_run(run_id, "running", 2.0)
    with pytest.raises(InvalidArgument, match="steps"):
        write(ScalarColumns("x", np.array([1, -1, 2]), good.wall_times, good.values))
    with pytest.raises(InvalidArgument, match="steps"):
        write(ScalarColumns("x", steps * 0.5, good.wall_times, good.values))
    with pytest.raises(InvalidArgument, match="length"):
        write(ScalarColumns("x", steps, good.wall_times[:2], good.values))
    with pytest.raises(InvalidArgument, match="wall_times"):
        write(ScalarColumns("x", steps, np.array([1.0, np.nan, 2.0]), good.values))
    with pytest.raises(InvalidArgument, match="tag"):
        write(ScalarColumns("", steps, good.wall_times, good.values))
    with pytest.raises(InvalidArgument, match="sequence"):
        store.write_batch(WriteBatch("c", -1, run_id, scalars=(good,)))
    assert store.list_tags(run_id) == []


def test_a_closed_store_refuses_calls(sqlite_url: str) -> None:
    store = SqlStore.from_url(sqlite_url)
    store.close()

    with pytest.raises(RuntimeError, match="closed"):
        store.list_experiments()
