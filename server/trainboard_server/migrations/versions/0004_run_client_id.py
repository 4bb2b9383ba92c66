"""A rerun is a new run: ``runs`` gets ``client_id``, the SDK client that created
the run, so that the client's retried StartRun (and a later sync of its spool)
finds that run instead of making another one. Runs created before stay NULL.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("client_id", sa.String(128), nullable=True))
        batch.create_index("ix_runs_experiment_id_client_id", ["experiment_id", "client_id"])


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_experiment_id_client_id")
        batch.drop_column("client_id")
