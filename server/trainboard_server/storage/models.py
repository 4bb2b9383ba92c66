"""The schema, as typed SQLAlchemy models.

These describe the tables; the Alembic migrations (``trainboard_server/migrations``)
create them, and a test checks that the two agree. Rows never leave the storage
package: the store converts them to ``trainboard.types`` objects.

Layout (docs/design.md):

- ``experiments``: a name per experiment.
- ``runs``: unique (experiment, name); params as JSON text; times as float epoch seconds;
  the id of the client that created it.
  An experiment row outlives its runs (deleting them leaves it); experiments are
  listed while they have runs.
- ``run_tags``: the labels of a run, one row per (run, tag).
- ``series``: one row per (run, tag, kind) with its last step and its tail chunk's
  seq and size, so that a write finds where to append from the series row it locks.
- ``scalar_chunks``: a scalar series in chunks keyed (series, seq). Each holds packed
  little-endian arrays (steps int64, values float64, wall times float64) with strictly
  increasing steps, plus summary columns. A later chunk wins on a step that several
  hold. Summary columns come first so that reading them never walks a blob.
- ``histograms``: one row per (series, step), replaced on re-log.
- ``graphs``: one node list (JSON text) per run.
- ``applied_batches``: the highest batch sequence applied per client, for idempotency.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from trainboard.types import STORED_STATUSES
from trainboard.validation import MAX_CLIENT_ID_LENGTH, MAX_NAME_LENGTH

# Columns as wide as the longest value validation lets through.
NAME_LENGTH = MAX_NAME_LENGTH
KIND_LENGTH = 16
CLIENT_ID_LENGTH = MAX_CLIENT_ID_LENGTH

# SQLite only autoincrements an INTEGER PRIMARY KEY (the rowid); PostgreSQL gets BIGINT.
Id = BigInteger().with_variant(Integer(), "sqlite")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _sql_list(values: tuple[str, ...]) -> str:
    """``('a', 'b')``: string literals for SQL's ``IN``."""
    return "(" + ", ".join(f"'{value}'" for value in values) + ")"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ExperimentRow(Base):
    __tablename__ = "experiments"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    created_at: Mapped[float] = mapped_column(Double)


class RunRow(Base):
    __tablename__ = "runs"
    __table_args__ = (
        UniqueConstraint("experiment_id", "name"),
        # Stored statuses only: "crashed" is reported, never stored.
        CheckConstraint(f"status IN {_sql_list(STORED_STATUSES)}", name="status"),
        Index(None, "experiment_id", "client_id"),
        # Runs are deleted: SQLite must never give a new run a deleted one's id.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    experiment_id: Mapped[int] = mapped_column(Id, ForeignKey("experiments.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    params: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(KIND_LENGTH))
    started_at: Mapped[float] = mapped_column(Double)
    finished_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    updated_at: Mapped[float] = mapped_column(Double)
    # The SDK client that created the run (its id, as in its write batches), so that
    # its retried StartRun, and a later sync of its spool, find the same run.
    client_id: Mapped[str | None] = mapped_column(String(CLIENT_ID_LENGTH), nullable=True)


class RunTagRow(Base):
    __tablename__ = "run_tags"

    run_id: Mapped[int] = mapped_column(
        Id, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    tag: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)


class SeriesRow(Base):
    __tablename__ = "series"
    __table_args__ = (
        UniqueConstraint("run_id", "tag", "kind"),
        CheckConstraint("kind IN ('scalar', 'histogram')", name="kind"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(Id, ForeignKey("runs.id", ondelete="CASCADE"))
    tag: Mapped[str] = mapped_column(String(NAME_LENGTH))
    kind: Mapped[str] = mapped_column(String(KIND_LENGTH))
    last_step: Mapped[int] = mapped_column(BigInteger)
    # Scalars only: the newest chunk's seq (0 before the first) and point count, kept
    # here so that a write decides merge-or-add from the row it locks anyway.
    tail_seq: Mapped[int] = mapped_column(Integer)
    tail_count: Mapped[int] = mapped_column(Integer)


class ScalarChunkRow(Base):
    __tablename__ = "scalar_chunks"
    __table_args__ = (Index(None, "series_id", "max_step"),)

    series_id: Mapped[int] = mapped_column(
        Id, ForeignKey("series.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    min_step: Mapped[int] = mapped_column(BigInteger)
    max_step: Mapped[int] = mapped_column(BigInteger)
    count: Mapped[int] = mapped_column(Integer)
    # Over the finite values; NULL when the chunk has none.
    min_value: Mapped[float | None] = mapped_column(Double, nullable=True)
    max_value: Mapped[float | None] = mapped_column(Double, nullable=True)
    # Packed little-endian arrays; steps_packed is empty when the steps are evenly
    # spaced (first, last and count then give them).
    steps_packed: Mapped[bytes] = mapped_column(LargeBinary)
    values_packed: Mapped[bytes] = mapped_column(LargeBinary)
    wall_times_packed: Mapped[bytes] = mapped_column(LargeBinary)


class HistogramRow(Base):
    __tablename__ = "histograms"

    series_id: Mapped[int] = mapped_column(
        Id, ForeignKey("series.id", ondelete="CASCADE"), primary_key=True
    )
    step: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    wall_time: Mapped[float] = mapped_column(Double)
    count: Mapped[int] = mapped_column(BigInteger)
    # Finite: the store refuses others (SQLite would turn a NaN into NULL).
    min: Mapped[float] = mapped_column(Double)
    max: Mapped[float] = mapped_column(Double)
    sum: Mapped[float] = mapped_column(Double)
    sum_squares: Mapped[float] = mapped_column(Double)
    nan_count: Mapped[int] = mapped_column(BigInteger)
    posinf_count: Mapped[int] = mapped_column(BigInteger)
    neginf_count: Mapped[int] = mapped_column(BigInteger)
    bucket_counts: Mapped[bytes] = mapped_column(LargeBinary)  # uint64, little-endian
    # float64, little-endian; NULL in rows written before migration 0003 (their
    # buckets are equal-width, their bands derived from the buckets).
    bucket_edges: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    basis_values: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class GraphRow(Base):
    __tablename__ = "graphs"

    run_id: Mapped[int] = mapped_column(
        Id, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    node_count: Mapped[int] = mapped_column(Integer)
    nodes: Mapped[str] = mapped_column(Text)  # a JSON list of node objects
    updated_at: Mapped[float] = mapped_column(Double)


class AppliedBatchRow(Base):
    __tablename__ = "applied_batches"

    client_id: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    high_sequence: Mapped[int] = mapped_column(BigInteger)


# The tables, for Core statements (the write and read paths use no ORM objects).
experiments = Base.metadata.tables["experiments"]
runs = Base.metadata.tables["runs"]
run_tags = Base.metadata.tables["run_tags"]
series = Base.metadata.tables["series"]
scalar_chunks = Base.metadata.tables["scalar_chunks"]
histograms = Base.metadata.tables["histograms"]
graphs = Base.metadata.tables["graphs"]
applied_batches = Base.metadata.tables["applied_batches"]
