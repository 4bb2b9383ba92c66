"""Histogram summaries whose buckets follow the data, with exact bands: the
``histograms`` table gets ``bucket_edges`` and ``basis_values`` (packed float64,
little-endian). Rows written before stay as they are (NULL in both): equal-width
buckets over [min, max], bands derived from the buckets.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("histograms") as batch:
        batch.add_column(sa.Column("bucket_edges", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("basis_values", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("histograms") as batch:
        batch.drop_column("basis_values")
        batch.drop_column("bucket_edges")
