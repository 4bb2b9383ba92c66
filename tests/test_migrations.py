"""Alembic owns the schema, on SQLite and PostgreSQL: the migrations create what the
models describe, and a database written at the first revision upgrades to head
with every point readable."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from trainboard.histogram import summarize
from trainboard.types import GraphNode, HistogramRecord, HistogramSummary, ScalarColumns, WriteBatch
from trainboard_server.sql_store import SqlStore
from trainboard_server.storage.engine import make_engine
from trainboard_server.storage.migrate import (
    current_revision,
    downgrade_to,
    head_revision,
    upgrade_to,
    upgrade_to_head,
)
from trainboard_server.storage.models import Base
from trainboard_server.storage.scalars import CHUNK_POINTS

FIRST_REVISION = "0001"
TABLES_AT_FIRST_REVISION = {
    "experiments",
    "runs",
    "series",
    "scalar_chunks",
    "histograms",
    "graphs",
    "applied_batches",
}
TABLES = TABLES_AT_FIRST_REVISION | {"run_tags"}


@pytest.fixture
def engine(empty_db_url: str) -> Iterator[Engine]:
    """An engine on a database with no tables at all."""
    engine = make_engine(empty_db_url)
    try:
        yield engine
    finally:
        engine.dispose()


def schema_differences(engine: Engine) -> list[object]:
    """What Alembic's autogenerate would add to a migration to make the database
    match the models (nothing, when they agree)."""
    with engine.connect() as connection:
        differences: list[object] = compare_metadata(
            MigrationContext.configure(connection), Base.metadata
        )
    return differences


# ---------------------------------------------------------------- the schema


def test_migrations_create_the_schema_on_an_empty_database(empty_db_url: str) -> None:
    store = SqlStore.from_url(empty_db_url)
    try:
        tables = set(inspect(store.engine).get_table_names())
        assert tables == TABLES | {"alembic_version"}
        with store.engine.connect() as connection:
            version = connection.execute(text("SELECT version_num FROM alembic_version"))
            assert version.scalar_one() == head_revision()
    finally:
        store.close()


def test_migrations_are_idempotent_on_a_second_open(empty_db_url: str) -> None:
    first = SqlStore.from_url(empty_db_url)
    run_id = first.start_run("e", "r", {"a": 1}, 1.0).run.id
    first.write_batch(scalar_batch(run_id, "loss", np.arange(5), np.zeros(5), sequence=1))
    first.close()

    second = SqlStore.from_url(empty_db_url)
    try:
        assert [r.id for r in second.list_runs("e")] == [run_id]
        loss = second.read_scalars(run_ids=[run_id], tags=["loss"]).get((run_id, "loss"))
        assert loss is not None
        assert loss.total == 5
        with second.engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        assert [v[0] for v in versions] == [head_revision()]
    finally:
        second.close()


def test_a_store_opened_without_migrating_does_not_create_tables(tmp_path: Path) -> None:
    store = SqlStore.from_url(f"sqlite:///{tmp_path / 'bare.db'}", migrate=False)
    try:
        assert inspect(store.engine).get_table_names() == []
    finally:
        store.close()


def test_the_models_and_the_migrations_describe_the_same_schema(engine: Engine) -> None:
    upgrade_to_head(engine)

    assert schema_differences(engine) == []


def test_the_schema_check_sees_what_a_migration_lacks(engine: Engine) -> None:
    # The comparison above can fail: at the first revision it finds the table that
    # the models have and the database has not yet.
    upgrade_to(engine, FIRST_REVISION)

    differences = schema_differences(engine)

    def described(difference: Any) -> tuple[str, ...]:
        if isinstance(difference, list):  # alembic lists column changes of a table
            (difference,) = difference
        if difference[0] == "add_column":
            return ("add_column", difference[2], difference[3].name)
        return (difference[0], difference[1].name)

    assert sorted(described(d) for d in differences) == [
        ("add_column", "histograms", "basis_values"),
        ("add_column", "histograms", "bucket_edges"),
        ("add_column", "runs", "client_id"),
        ("add_index", "ix_runs_experiment_id_client_id"),
        ("add_table", "run_tags"),
    ]


# ---------------------------------------------------------------- upgrading data


def scalar_batch(
    run_id: int, tag: str, steps: np.ndarray, values: np.ndarray, *, sequence: int
) -> WriteBatch:
    steps = np.asarray(steps, dtype=np.int64)
    column = ScalarColumns(
        tag=tag,
        steps=steps,
        wall_times=1_000.0 + steps.astype(np.float64),
        values=np.asarray(values, dtype=np.float64),
    )
    return WriteBatch("first-revision", sequence, run_id, scalars=(column,))


def histogram_record(step: int) -> HistogramRecord:
    buckets = (step % 5, 4, 1)
    finite = sum(buckets)
    summary = HistogramSummary(
        count=finite + 2,
        min=-float(step),
        max=float(step) + 1.0,
        sum=0.5 * finite,
        sum_squares=2.0 * finite,
        nan_count=1,
        posinf_count=1,
        neginf_count=0,
        bucket_counts=buckets,
    )
    return HistogramRecord(tag="layer/W", step=step, wall_time=2_000.0 + step, summary=summary)


def start_run_as_at_the_first_revision(
    engine: Engine, experiment: str, name: str, params: str, wall_time: float
) -> int:
    """A run row exactly as revision 0001 stored it (revision 0004 added a column)."""
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO experiments (name, created_at) VALUES (:name, :t) "
                "ON CONFLICT (name) DO NOTHING"
            ),
            {"name": experiment, "t": wall_time},
        )
        return int(
            connection.execute(
                text(
                    "INSERT INTO runs (experiment_id, name, params, status, started_at, "
                    "updated_at) SELECT id, :name, :params, 'running', :t, :t FROM experiments "
                    "WHERE name = :experiment RETURNING id"
                ),
                {"experiment": experiment, "name": name, "params": params, "t": wall_time},
            ).scalar_one()
        )


def write_histograms_as_at_the_first_revision(
    engine: Engine, run_id: int, records: list[HistogramRecord]
) -> None:
    """Rows exactly as revision 0001's write path stored them (no edges, no bands)."""
    with engine.begin() as connection:
        series_id = connection.execute(
            text(
                "INSERT INTO series (run_id, tag, kind, last_step, tail_seq, tail_count) "
                "VALUES (:run, :tag, 'histogram', :last, 0, 0) RETURNING id"
            ),
            {"run": run_id, "tag": records[0].tag, "last": max(r.step for r in records)},
        ).scalar_one()
        for r in records:
            s = r.summary
            connection.execute(
                text(
                    "INSERT INTO histograms (series_id, step, wall_time, count, min, max, sum, "
                    "sum_squares, nan_count, posinf_count, neginf_count, bucket_counts) VALUES "
                    "(:sid, :step, :wall, :count, :min, :max, :sum, :sq, :nan, :pinf, :ninf, :b)"
                ),
                {
                    "sid": series_id,
                    "step": r.step,
                    "wall": r.wall_time,
                    "count": s.count,
                    "min": s.min,
                    "max": s.max,
                    "sum": s.sum,
                    "sq": s.sum_squares,
                    "nan": s.nan_count,
                    "pinf": s.posinf_count,
                    "ninf": s.neginf_count,
                    "b": np.asarray(s.bucket_counts, dtype="<u8").tobytes(),
                },
            )


GRAPH = [
    GraphNode(name="x", op="Placeholder", shape=(-1, 64), dtype="float32"),
    GraphNode(name="W", op="Variable", shape=(64, 10), dtype="float32"),
    GraphNode(name="matmul", op="MatMul", inputs=("x", "W"), attributes={"note": "ünï"}),
]


def test_data_written_at_the_first_revision_reads_back_whole_after_upgrading(
    engine: Engine,
) -> None:
    upgrade_to(engine, FIRST_REVISION)
    assert current_revision(engine) == FIRST_REVISION
    assert set(inspect(engine).get_table_names()) == TABLES_AT_FIRST_REVISION | {"alembic_version"}
    # Written with this release's write path, which touches only tables that the
    # first revision created (if a later revision changes one of them, write these
    # rows with plain SQL matching 0001 instead).
    old = SqlStore(engine, crashed_after=None)
    sequence = iter(range(1, 1_000))
    expected: dict[tuple[int, str], dict[int, float]] = {}

    def write(run_id: int, tag: str, steps: np.ndarray, values: np.ndarray) -> None:
        old.write_batch(scalar_batch(run_id, tag, steps, values, sequence=next(sequence)))
        points = expected.setdefault((run_id, tag), {})
        points.update(zip(np.asarray(steps).tolist(), np.asarray(values).tolist(), strict=True))

    # Runs with plain SQL: revision 0004 added a column that the write path fills.
    long_run = start_run_as_at_the_first_revision(engine, "digits", "lr=0.5", '{"lr": 0.5}', 100.0)
    steps = np.arange(3 * CHUNK_POINTS + 17)
    write(long_run, "loss", steps, np.cos(steps / 100.0))  # several full chunks
    write(long_run, "loss", np.arange(500, 520), np.full(20, -1.0))  # re-logged steps
    for start in range(0, 300, 30):  # small in-order batches merged into a tail
        part = np.arange(start, start + 30)
        write(long_run, "accuracy", part, part / 300.0)
    write(long_run, "odd", np.arange(4), np.array([np.nan, np.inf, -np.inf, -0.0]))
    # Histograms with plain SQL: revision 0003 added columns that the write path fills.
    write_histograms_as_at_the_first_revision(
        engine, long_run, [histogram_record(step) for step in range(0, 50, 5)]
    )
    old.set_graph(long_run, GRAPH)
    old.finish_run(long_run, "finished", 90_000.0)
    other_run = start_run_as_at_the_first_revision(engine, "digits", "lr=0.1", '{"lr": 0.1}', 200.0)
    write(other_run, "loss", np.arange(100), np.linspace(2.0, 1.0, 100))
    elsewhere = start_run_as_at_the_first_revision(engine, "cifar", "baseline", "{}", 300.0)
    write(elsewhere, "loss", np.array([7]), np.array([0.25]))

    upgrade_to_head(engine)

    assert current_revision(engine) == head_revision()
    new = SqlStore(engine, crashed_after=None)
    assert new.list_experiments() == ["cifar", "digits"]
    runs = new.list_runs("digits")
    assert [(r.id, r.name, r.status, r.tags) for r in runs] == [
        (long_run, "lr=0.5", "finished", ()),
        (other_run, "lr=0.1", "running", ()),
    ]
    assert dict(runs[0].params) == {"lr": 0.5}
    assert (runs[0].started_at, runs[0].finished_at) == (100.0, 90_000.0)
    for (run_id, tag), points in expected.items():
        series = new.read_scalars(run_ids=[run_id], tags=[tag]).get((run_id, tag))
        assert series is not None, (run_id, tag)
        wanted_steps = sorted(points)
        assert series.steps.tolist() == wanted_steps
        assert series.total == len(wanted_steps)
        wanted = np.array([points[s] for s in wanted_steps], dtype=np.float64)
        assert series.values.tobytes() == wanted.tobytes()  # NaN and -0.0 bit for bit
        np.testing.assert_array_equal(series.wall_times, 1_000.0 + series.steps)
    histograms = new.read_histograms(run_ids=[long_run], tags=["layer/W"]).get(
        (long_run, "layer/W")
    )
    assert histograms is not None
    assert [h.step for h in histograms] == list(range(0, 50, 5))
    assert [h.summary for h in histograms] == [
        histogram_record(step).summary for step in range(0, 50, 5)
    ]
    # Summaries stored before edges and exact bands: equal-width buckets, bands
    # derived from them.
    assert all(h.edges == () and h.basis_values == () for h in histograms)
    oldest = histograms[1]
    np.testing.assert_array_equal(oldest.bucket_edges(), np.linspace(oldest.min, oldest.max, 4))
    assert oldest.bands()[0] == oldest.min
    assert oldest.bands()[-1] == oldest.max
    # The upgraded database keeps a new summary's edges and exact bands.
    fresh = summarize(np.append(np.random.default_rng(1).standard_normal(5000), 1000.0))
    new.write_batch(
        WriteBatch(
            "after-upgrade",
            1,
            long_run,
            histograms=(HistogramRecord("layer/b", 0, 3_000.0, fresh),),
        )
    )
    stored = new.read_histograms(run_ids=[long_run], tags=["layer/b"]).get((long_run, "layer/b"))
    assert stored is not None
    assert stored[0].summary == fresh
    assert new.get_graph(long_run) == GRAPH
    assert [(t.name, t.kind, t.last_step) for t in new.list_tags(long_run)] == [
        ("layer/W", "histogram", 45),
        ("layer/b", "histogram", 0),
        ("accuracy", "scalar", 299),
        ("loss", "scalar", 3 * CHUNK_POINTS + 16),
        ("odd", "scalar", 3),
    ]
    # The upgraded database takes what the new revision added, old rows cascade, and
    # the newest run's id is not handed out again once it is deleted.
    assert new.set_run_tags(other_run, ["kept"]) == ("kept",)
    new.delete_run(long_run)
    assert [(r.name, r.tags) for r in new.list_runs("digits")] == [("lr=0.1", ("kept",))]
    new.delete_run(elsewhere)
    assert new.start_run("cifar", "baseline", None, 400.0).run.id > elsewhere


def test_downgrading_to_the_first_revision_keeps_the_older_tables_data(engine: Engine) -> None:
    upgrade_to_head(engine)
    store = SqlStore(engine, crashed_after=None)
    run_id = store.start_run("e", "r", None, 1.0).run.id
    store.write_batch(scalar_batch(run_id, "loss", np.arange(3), np.ones(3), sequence=1))
    store.set_run_tags(run_id, ["gone after the downgrade"])

    downgrade_to(engine, FIRST_REVISION)
    assert "run_tags" not in inspect(engine).get_table_names()
    upgrade_to_head(engine)

    assert [(r.id, r.tags) for r in store.list_runs("e")] == [(run_id, ())]
    loss = store.read_scalars(run_ids=[run_id], tags=["loss"]).get((run_id, "loss"))
    assert loss is not None
    assert loss.values.tolist() == [1.0, 1.0, 1.0]
