"""SQLAlchemy 2 declarative models of the records database (SQLite and PostgreSQL).

Tables: `notes` (the index registry), `audit_reports` (one per check), `audit_matches` (the ranked
matches of a report), `decisions` (moderator decisions on matches). Indices serve the dashboard
queries: reports by verdict and time, matches by score, notes by status.
The schema is created by Alembic (app/migrations); `Base.metadata` is its autogenerate target.
Rows stay inside app/records: the public functions return app.records.types dataclasses.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# Deterministic constraint names: Alembic batch mode on SQLite needs names to alter constraints.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

NOTE_STATUSES = ("pending", "indexed", "failed", "deleted")  # app.records.types.NoteStatus
DECISIONS = ("duplicate", "infringing", "not_a_copy")  # app.records.types.Decision

# JSON on SQLite (TEXT), JSONB on PostgreSQL (indexable, compact).
PortableJSON = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware UTC.

    PostgreSQL stores `timestamptz`; SQLite stores text without an offset, so values are converted to
    UTC before writing and tagged UTC on reading. Naive datetimes are taken to be UTC already.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class NoteRow(Base):
    """One note known to the index (the registry). `content_hash`: sha256 hex of canonical JSON + images."""

    __tablename__ = "notes"

    note_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    content_hash: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the note's own time
    source: Mapped[str | None] = mapped_column(Text)  # file path or origin of the note
    model_version: Mapped[str | None] = mapped_column(String(200))
    indexed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        CheckConstraint(f"status IN {NOTE_STATUSES!r}", name="status"),
        Index("ix_notes_status_note_id", "status", "note_id"),
        Index("ix_notes_content_hash", "content_hash"),
        Index("ix_notes_updated_at", "updated_at"),
    )


class AuditReportRow(Base):
    """One audit (check) of a note. `report`: the whole AuditReport.to_dict() as saved."""

    __tablename__ = "audit_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    query_note_id: Mapped[str | None] = mapped_column(String(200))  # None: checked without being stored
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    verdict: Mapped[str] = mapped_column(String(32))
    top_score: Mapped[float | None] = mapped_column(Float)
    report: Mapped[dict[str, Any]] = mapped_column(PortableJSON)

    matches: Mapped[list["MatchRow"]] = relationship(
        back_populates="report", order_by="MatchRow.rank", cascade="all, delete-orphan", passive_deletes=True
    )

    __table_args__ = (
        Index("ix_audit_reports_verdict_created_at", "verdict", "created_at"),
        Index("ix_audit_reports_created_at", "created_at"),
        Index("ix_audit_reports_top_score", "top_score"),
        Index("ix_audit_reports_query_note_id", "query_note_id"),
    )


class MatchRow(Base):
    """One ranked match of a report (rank 1 = best)."""

    __tablename__ = "audit_matches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("audit_reports.id", ondelete="CASCADE"))
    matched_note_id: Mapped[str] = mapped_column(String(200))
    score: Mapped[float] = mapped_column(Float)
    verdict: Mapped[str] = mapped_column(String(32))
    rank: Mapped[int] = mapped_column(Integer)

    report: Mapped[AuditReportRow] = relationship(back_populates="matches")
    decisions: Mapped[list["DecisionRow"]] = relationship(
        back_populates="match", order_by="DecisionRow.id", cascade="all, delete-orphan", passive_deletes=True
    )

    __table_args__ = (
        UniqueConstraint("report_id", "rank"),
        Index("ix_audit_matches_matched_note_id", "matched_note_id"),
        Index("ix_audit_matches_score", "score"),
        Index("ix_audit_matches_verdict_score", "verdict", "score"),
    )


class DecisionRow(Base):
    """A moderator's decision on one match; several per match are kept (the latest counts)."""

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    match_id: Mapped[int] = mapped_column(ForeignKey("audit_matches.id", ondelete="CASCADE"))
    decision: Mapped[str] = mapped_column(String(16))
    comment: Mapped[str | None] = mapped_column(Text)
    moderator: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    match: Mapped[MatchRow] = relationship(back_populates="decisions")

    __table_args__ = (
        CheckConstraint(f"decision IN {DECISIONS!r}", name="decision"),
        Index("ix_decisions_match_id", "match_id"),
        Index("ix_decisions_created_at", "created_at"),
    )
