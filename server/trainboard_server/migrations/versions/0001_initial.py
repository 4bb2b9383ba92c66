"""The initial schema: experiments, runs, series, scalar chunks, histograms, graphs
and applied batches (see ``trainboard_server.storage.models``).

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# Written out rather than imported from the models, so that this revision keeps
# creating the schema it created when the models change later.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", Id, nullable=False, autoincrement=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_experiments"),
        sa.UniqueConstraint("name", name="uq_experiments_name"),
    )
    op.create_table(
        "runs",
        sa.Column("id", Id, nullable=False, autoincrement=True),
        sa.Column("experiment_id", Id, nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.Double(), nullable=False),
        sa.Column("finished_at", sa.Double(), nullable=True),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.id"],
            name="fk_runs_experiment_id_experiments",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("experiment_id", "name", name="uq_runs_experiment_id_name"),
        sa.CheckConstraint(
            "status IN ('running', 'finished', 'failed', 'killed')", name="ck_runs_status"
        ),
    )
    op.create_table(
        "series",
        sa.Column("id", Id, nullable=False, autoincrement=True),
        sa.Column("run_id", Id, nullable=False),
        sa.Column("tag", sa.String(256), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("last_step", sa.BigInteger(), nullable=False),
        sa.Column("tail_seq", sa.Integer(), nullable=False),
        sa.Column("tail_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_series"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_series_run_id_runs", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("run_id", "tag", "kind", name="uq_series_run_id_tag_kind"),
        sa.CheckConstraint("kind IN ('scalar', 'histogram')", name="ck_series_kind"),
    )
    op.create_table(
        "scalar_chunks",
        sa.Column("series_id", Id, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("min_step", sa.BigInteger(), nullable=False),
        sa.Column("max_step", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("min_value", sa.Double(), nullable=True),
        sa.Column("max_value", sa.Double(), nullable=True),
        sa.Column("steps_packed", sa.LargeBinary(), nullable=False),
        sa.Column("values_packed", sa.LargeBinary(), nullable=False),
        sa.Column("wall_times_packed", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("series_id", "seq", name="pk_scalar_chunks"),
        sa.ForeignKeyConstraint(
            ["series_id"],
            ["series.id"],
            name="fk_scalar_chunks_series_id_series",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_scalar_chunks_series_id_max_step", "scalar_chunks", ["series_id", "max_step"]
    )
    op.create_table(
        "histograms",
        sa.Column("series_id", Id, nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("wall_time", sa.Double(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("min", sa.Double(), nullable=False),
        sa.Column("max", sa.Double(), nullable=False),
        sa.Column("sum", sa.Double(), nullable=False),
        sa.Column("sum_squares", sa.Double(), nullable=False),
        sa.Column("nan_count", sa.BigInteger(), nullable=False),
        sa.Column("posinf_count", sa.BigInteger(), nullable=False),
        sa.Column("neginf_count", sa.BigInteger(), nullable=False),
        sa.Column("bucket_counts", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("series_id", "step", name="pk_histograms"),
        sa.ForeignKeyConstraint(
            ["series_id"],
            ["series.id"],
            name="fk_histograms_series_id_series",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "graphs",
        sa.Column("run_id", Id, nullable=False, autoincrement=False),
        sa.Column("node_count", sa.Integer(), nullable=False),
        sa.Column("nodes", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", name="pk_graphs"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_graphs_run_id_runs", ondelete="CASCADE"
        ),
    )
    op.create_table(
        "applied_batches",
        sa.Column("client_id", sa.String(256), nullable=False),
        sa.Column("high_sequence", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("client_id", name="pk_applied_batches"),
    )
    if op.get_bind().dialect.name == "postgresql":
        # Packed floats do not compress: spare PostgreSQL the attempt on every write.
        for column in ("steps_packed", "values_packed", "wall_times_packed"):
            op.execute(f'ALTER TABLE scalar_chunks ALTER COLUMN "{column}" SET STORAGE EXTERNAL')


def downgrade() -> None:
    for table in (
        "applied_batches",
        "graphs",
        "histograms",
        "scalar_chunks",
        "series",
        "runs",
        "experiments",
    ):
        op.drop_table(table)
