"""Tamper-evident audit log, the application's own PostgreSQL role, and backfills' allow_outside.

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-23

- audit_log gets `prev_hash` / `row_hash` (app/records/audit_chain.py) and `audit_chain_head` holds the
  newest entry's id and hash; the entries written before this revision are chained here, in id order
  (the append-only triggers are lifted for that one UPDATE and put back).
- PostgreSQL only: the role `uninote_app` (NOLOGIN; the application's login role is made a member of it by
  `uninote migrate`, app/records/roles.py) may read and write every table except that on audit_log it may
  only SELECT and INSERT: no UPDATE, DELETE or TRUNCATE, and, not being the owner, no ALTER TABLE
  (DISABLE/DROP TRIGGER); alembic_version is read-only to it. Default privileges give it the same rights on
  the tables later migrations create. Creating the role needs CREATEROLE: without it (and without the role)
  the grants are skipped with a warning and the single-role setup goes on as before (docs/scaling.md).
- backfills.allow_outside: the job may read images outside its notes file's folder (`--allow-outside`).
"""

import json
import logging
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from app.records.audit_chain import GENESIS_HASH, entry_hash

revision: str = "0005"
down_revision: Union[str, Sequence[str], None] = "0004"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

log = logging.getLogger("alembic.runtime.migration")

APP_ROLE = "uninote_app"
APPEND_ONLY = "audit_log is append-only"
SQLITE_TRIGGERS = {  # as revision 0003 made them
    "audit_log_no_update": f"CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN "
                           f"SELECT RAISE(ABORT, '{APPEND_ONLY}'); END",
    "audit_log_no_delete": f"CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN "
                           f"SELECT RAISE(ABORT, '{APPEND_ONLY}'); END",
}
CREATE_ROLE = (f"DO $$ BEGIN CREATE ROLE {APP_ROLE} NOLOGIN; "
               "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$")  # parallel migrations
GRANTS = [
    f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}",
    f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE}",
    f"REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM {APP_ROLE}",
    f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM {APP_ROLE}",
    f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}",
    f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {APP_ROLE}",
    f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {APP_ROLE}",
]
REVOKES = [
    f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM {APP_ROLE}",
    f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM {APP_ROLE}",
    f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {APP_ROLE}",
    f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {APP_ROLE}",
    f"REVOKE USAGE ON SCHEMA public FROM {APP_ROLE}",
]

AUDIT_LOG = sa.table(
    "audit_log",
    sa.column("id", sa.Integer()),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("actor", sa.String()),
    sa.column("action", sa.String()),
    sa.column("target", sa.Text()),
    sa.column("details", sa.JSON().with_variant(postgresql.JSONB(), "postgresql")),
    sa.column("prev_hash", sa.String()),
    sa.column("row_hash", sa.String()),
)


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    op.add_column("backfills", sa.Column("allow_outside", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column("audit_log", sa.Column("prev_hash", sa.String(length=64), nullable=True))
    op.add_column("audit_log", sa.Column("row_hash", sa.String(length=64), nullable=True))
    head = op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_id", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain_head")),
    )
    last_id, last_hash = _chain_existing_entries(bind, postgres)
    op.bulk_insert(head, [{"id": 1, "last_id": last_id, "last_hash": last_hash}])
    if postgres:
        _grant_app_role(bind)


def _chain_existing_entries(bind, postgres: bool) -> tuple[int, str]:
    rows = bind.execute(sa.select(AUDIT_LOG).order_by(AUDIT_LOG.c.id)).mappings().all()
    if not rows:
        return 0, GENESIS_HASH
    if postgres:
        op.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change")
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
    prev = GENESIS_HASH
    for row in rows:
        details = json.loads(row["details"]) if isinstance(row["details"], str) else row["details"]
        row_hash = entry_hash(prev, row["id"], row["created_at"], row["actor"], row["action"], row["target"], details)
        bind.execute(sa.update(AUDIT_LOG).where(AUDIT_LOG.c.id == row["id"]).values(prev_hash=prev, row_hash=row_hash))
        prev = row_hash
    if postgres:
        op.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_change")
    else:
        for statement in SQLITE_TRIGGERS.values():
            op.execute(statement)
    return rows[-1]["id"], prev


def _grant_app_role(bind) -> None:
    exists = bind.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": APP_ROLE}).scalar()
    may_create = bind.execute(sa.text("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user")).scalar()
    if not exists and not may_create:
        log.warning("role %s not created (the migrating role lacks CREATEROLE): the application keeps using the "
                    "migrating role, which can rewrite the audit log; see docs/scaling.md", APP_ROLE)
        return
    if not exists:
        op.execute(CREATE_ROLE)
    for statement in GRANTS:
        op.execute(statement)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        if bind.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": APP_ROLE}).scalar():
            for statement in REVOKES:
                op.execute(statement)
        op.drop_column("audit_log", "row_hash")
        op.drop_column("audit_log", "prev_hash")
        op.drop_column("backfills", "allow_outside")
    else:  # SQLite: batch mode copies the table, which drops its triggers; put them back
        with op.batch_alter_table("audit_log") as batch:
            batch.drop_column("row_hash")
            batch.drop_column("prev_hash")
        for name, statement in SQLITE_TRIGGERS.items():
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
            op.execute(statement)
        with op.batch_alter_table("backfills") as batch:
            batch.drop_column("allow_outside")
    op.drop_table("audit_chain_head")
