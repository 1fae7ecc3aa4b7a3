"""The records layer: the note registry and the audit log, in SQLite or PostgreSQL (SQLAlchemy 2 + Alembic).

    from app.records import make_engine, session_factory, transaction, migrate, registry, reports
    migrate(url)
    sessions = session_factory(make_engine(url))
    with transaction(sessions) as session:
        registry.upsert_pending(session, note, registry.content_hash(note), source="notes.jsonl")

ORM rows never leave the package: registry and reports return app.records.types dataclasses.
"""

from app.records import registry, reports
from app.records.db import check_connection, make_engine, migrate, normalize_url, safe_url, session_factory, transaction
from app.records.errors import DatabaseUnreachableError, RecordNotFoundError, RecordsError
from app.records.types import (
    Decision,
    DecisionRecord,
    MatchRecord,
    NoteRecord,
    NoteStatus,
    ReportRecord,
    ReportSummary,
)

__all__ = [
    "registry",
    "reports",
    "check_connection",
    "make_engine",
    "migrate",
    "normalize_url",
    "safe_url",
    "session_factory",
    "transaction",
    "DatabaseUnreachableError",
    "RecordNotFoundError",
    "RecordsError",
    "Decision",
    "DecisionRecord",
    "MatchRecord",
    "NoteRecord",
    "NoteStatus",
    "ReportRecord",
    "ReportSummary",
]
