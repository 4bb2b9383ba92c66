"""Housekeeping: run tags (``run_tags``, one row per run and tag), and run ids that
SQLite never hands out twice.

Runs can be deleted from this revision on. SQLite gives a new row the highest id
+ 1, so a run created after the newest one was deleted would get its id, and a
client still writing to the deleted run would write into the new one. A table
declared AUTOINCREMENT never reuses an id; SQLite cannot add that to a table, so
the runs table is recreated (``storage.migrate`` runs migrations with SQLite's
foreign keys off, as recreating a referenced table needs). PostgreSQL's identity
columns never reuse ids.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

# Written out rather than imported from the models (see 0001).
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _runs_table() -> sa.Table:
    """The runs table as 0001 created it."""
    return sa.Table(
        "runs",
        sa.MetaData(),
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


def _recreate_sqlite_runs(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "runs",
        recreate="always",
        copy_from=_runs_table(),
        table_kwargs={"sqlite_autoincrement": autoincrement},
    ):
        pass


def upgrade() -> None:
    _recreate_sqlite_runs(autoincrement=True)
    # The primary key (run_id, tag) also serves the lookups by run and the
    # cascade when a run is deleted.
    op.create_table(
        "run_tags",
        sa.Column("run_id", Id, nullable=False, autoincrement=False),
        sa.Column("tag", sa.String(256), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "tag", name="pk_run_tags"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_run_tags_run_id_runs", ondelete="CASCADE"
        ),
    )


def downgrade() -> None:
    op.drop_table("run_tags")
    _recreate_sqlite_runs(autoincrement=False)
