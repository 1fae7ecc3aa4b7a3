"""API keys, banks (risk libraries and allow-lists), bank entries and the webhook delivery log
(app.records.api_keys.ApiKeyRow, app.records.banks.BankRow / BankEntryRow / WebhookDeliveryRow).

Revision ID: 0006
Revises: 0003
Create Date: 2026-11-23

Written by hand from the models; plain SQLAlchemy types (a migration must not import the models it freezes).
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: Union[str, Sequence[str], None] = "0005"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

UTC_TIMESTAMP = sa.DateTime(timezone=True)
PORTABLE_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key_id", sa.String(length=12), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("revoked_at", UTC_TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_id", name=op.f("uq_api_keys_key_id")),
    )
    op.create_index("ix_api_keys_revoked_at", "api_keys", ["revoked_at"])
    op.create_table(
        "banks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("duplicate_threshold", sa.Float(), nullable=True),
        sa.Column("infringement_threshold", sa.Float(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("webhook_url", sa.Text(), nullable=True),
        sa.Column("webhook_secret", sa.String(length=200), nullable=True),
        sa.Column("created_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("updated_at", UTC_TIMESTAMP, nullable=False),
        sa.CheckConstraint("kind IN ('risk', 'allow')", name=op.f("ck_banks_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_banks")),
        sa.UniqueConstraint("name", name=op.f("uq_banks_name")),
    )
    op.create_table(
        "bank_entries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("bank_id", sa.Integer(), nullable=False),
        sa.Column("origin", sa.String(length=8), nullable=False),
        sa.Column("note_id", sa.String(length=200), nullable=True),
        sa.Column("pdq_hex", sa.String(length=64), nullable=True),
        sa.Column("pdq_quality", sa.Integer(), nullable=True),
        sa.Column("details", PORTABLE_JSON, nullable=False),
        sa.Column("added_by", sa.String(length=200), nullable=False),
        sa.Column("added_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("hit_count", sa.Integer(), nullable=False),
        sa.Column("last_hit_at", UTC_TIMESTAMP, nullable=True),
        sa.CheckConstraint("note_id IS NOT NULL OR pdq_hex IS NOT NULL", name=op.f("ck_bank_entries_signal")),
        sa.ForeignKeyConstraint(["bank_id"], ["banks.id"], name=op.f("fk_bank_entries_bank_id_banks"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bank_entries")),
        sa.UniqueConstraint("bank_id", "note_id", name=op.f("uq_bank_entries_bank_id_note_id")),
        sa.UniqueConstraint("bank_id", "pdq_hex", name=op.f("uq_bank_entries_bank_id_pdq_hex")),
    )
    op.create_index("ix_bank_entries_note_id", "bank_entries", ["note_id"])
    op.create_index("ix_bank_entries_origin", "bank_entries", ["origin"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("bank_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("payload", PORTABLE_JSON, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("updated_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("delivered_at", UTC_TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(["bank_id"], ["banks.id"], name=op.f("fk_webhook_deliveries_bank_id_banks"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    op.create_index("ix_webhook_deliveries_bank_id_id", "webhook_deliveries", ["bank_id", "id"])
    op.create_index("ix_webhook_deliveries_status", "webhook_deliveries", ["status"])


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_table("bank_entries")
    op.drop_table("banks")
    op.drop_table("api_keys")
