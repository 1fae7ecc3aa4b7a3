"""Backfill progress: one row per backfill / re-index job (app.records.backfills.BackfillRow).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

Written by hand from app.records.backfills; plain SQLAlchemy types (a migration must not import the
models it freezes); timestamps are timestamptz on PostgreSQL, JSON is JSONB there.
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: Union[str, Sequence[str], None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

UTC_TIMESTAMP = sa.DateTime(timezone=True)
PORTABLE_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "backfills",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("model_version", sa.String(length=200), nullable=True),
        sa.Column("checkpoint", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("cursor", sa.Integer(), nullable=False),
        sa.Column("cursor_bytes", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=True),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("elapsed_s", sa.Float(), nullable=False),
        sa.Column("rate", sa.Float(), nullable=True),
        sa.Column("errors", PORTABLE_JSON, nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("updated_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("finished_at", UTC_TIMESTAMP, nullable=True),
        sa.CheckConstraint("kind IN ('backfill', 'reindex')", name=op.f("ck_backfills_kind")),
        sa.CheckConstraint("status IN ('running', 'paused', 'done', 'failed')", name=op.f("ck_backfills_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backfills")),
    )
    op.create_index("ix_backfills_kind_source", "backfills", ["kind", "source"])
    op.create_index("ix_backfills_status", "backfills", ["status"])


def downgrade() -> None:
    op.drop_table("backfills")  # dropping a table drops its indices
