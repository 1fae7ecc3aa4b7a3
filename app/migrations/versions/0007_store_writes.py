"""Vector writes in progress: the store_writes table (app.records.store_writes.StoreWriteRow), so that a
note whose writer was killed between its vector writes and its registry commit is found and swept.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

Written by hand from the models; plain SQLAlchemy types; timestamps are timestamptz on PostgreSQL.
The application's PostgreSQL role gets its rights through 0005's default privileges.
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: Union[str, Sequence[str], None] = "0006"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "store_writes",
        sa.Column("note_id", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("note_id", name=op.f("pk_store_writes")),
    )


def downgrade() -> None:
    op.drop_table("store_writes")
