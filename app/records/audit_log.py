"""The append-only audit log: who did what and when (decisions, threshold changes, account changes,
sign-ins).

Append-only twice over: this module has no update or delete function, and Alembic revision 0003 puts
triggers on the table that refuse UPDATE and DELETE (SQLite and PostgreSQL), so not even a hand-written
statement can rewrite history. Plain functions over a Session; they return `AuditEntry` dataclasses.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Index, Integer, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.records.models import Base, PortableJSON, UTCDateTime, utcnow
from app.records.paging import check_page


class Action(StrEnum):
    DECISION = "decision"  # a moderator decided on a match (target: "match:<id>")
    THRESHOLDS = "thresholds"  # an admin changed the audit thresholds (target: "thresholds")
    USER_ADD = "user_add"  # an account was created (target: "user:<name>")
    USER_ROLE = "user_role"  # an account's role changed
    USER_ACTIVE = "user_active"  # an account was enabled or disabled
    USER_PASSWORD = "user_password"  # an account's password was replaced
    SIGN_IN = "sign_in"  # a successful dashboard sign-in
    API_CALL = "api_call"  # one authenticated HTTP API call (actor "api-key:<id>", target "METHOD /path")
    API_KEY = "api_key"  # an API key was created or revoked (target: "api-key:<id>")
    BANK = "bank"  # a bank or its entries changed (target: "bank:<name>")
    SIGN_IN_FAILED = "sign_in_failed"  # a refused sign-in (target: the account, "user:?" for an unknown name)
    SIGN_IN_THROTTLED = "sign_in_throttled"  # sign-ins refused unchecked: too many attempts (once a minute per key)
    SIGN_OUT = "sign_out"  # a dashboard session ended by its user
    FILE_REFUSED = "file_refused"  # a dashboard request named a file it had not uploaded (target: "file:<path>")


ACTIONS = tuple(a.value for a in Action)


class AuditLogRow(Base):
    """One entry. actor: the username who acted ("cli" for the command line); details: JSON object."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(PortableJSON, default=dict)

    __table_args__ = (
        Index("ix_audit_log_created_at", "created_at"),
        Index("ix_audit_log_action_created_at", "action", "created_at"),
        Index("ix_audit_log_actor", "actor"),
    )


@dataclass(frozen=True)
class AuditEntry:
    """One audit-log entry; created_at is timezone-aware UTC."""

    id: int
    created_at: datetime
    actor: str
    action: Action
    target: str | None
    details: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """One line: '2026-11-22 10:01:02 alice decision match:7 {"decision": "duplicate"}'."""
        details = json.dumps(self.details, ensure_ascii=False, sort_keys=True) if self.details else ""
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.target or ''} {details}".rstrip()


def append(session: Session, actor: str, action: Action | str, target: str | None = None,
           details: Mapping[str, Any] | None = None) -> AuditEntry:
    """Add one entry (now). Raises ValueError for an empty actor, an unknown action, or details that
    are not a JSON object."""
    if not isinstance(actor, str) or not actor.strip():
        raise ValueError("actor must name who acted (got an empty value)")
    action = _action(action)
    payload = dict(details or {})
    try:
        payload = json.loads(json.dumps(payload, allow_nan=False, default=str))
    except (TypeError, ValueError) as e:
        raise ValueError(f"details: not storable as JSON: {e}") from None
    row = AuditLogRow(created_at=utcnow(), actor=actor.strip(), action=action.value, target=target, details=payload)
    session.add(row)
    session.flush()
    return _to_entry(row)


def list_entries(session: Session, action: Action | str | None = None, actor: str | None = None,
                 since: datetime | None = None, offset: int = 0, limit: int = 50) -> list[AuditEntry]:
    """One page of entries, newest first, optionally of one action / actor / since a time (naive = UTC).
    Raises ValueError for an unknown action or a bad page."""
    check_page(offset, limit)
    query = _filtered(select(AuditLogRow), action, actor, since)
    query = query.order_by(AuditLogRow.id.desc()).offset(offset).limit(limit)
    return [_to_entry(r) for r in session.scalars(query)]


def count_entries(session: Session, action: Action | str | None = None, actor: str | None = None,
                  since: datetime | None = None) -> int:
    """Number of entries matching the same filters as list_entries."""
    return int(session.scalar(_filtered(select(func.count(AuditLogRow.id)), action, actor, since)) or 0)


def latest(session: Session, action: Action | str) -> AuditEntry | None:
    """The newest entry of `action`, or None."""
    row = session.scalars(
        select(AuditLogRow).where(AuditLogRow.action == _action(action).value).order_by(AuditLogRow.id.desc()).limit(1)
    ).first()
    return None if row is None else _to_entry(row)


def _filtered(query, action, actor, since):
    if action is not None:
        query = query.where(AuditLogRow.action == _action(action).value)
    if actor:
        query = query.where(AuditLogRow.actor == actor)
    if since is not None:
        query = query.where(AuditLogRow.created_at >= since)
    return query


def _action(action: Action | str) -> Action:
    try:
        return Action(action)
    except ValueError:
        raise ValueError(f"unknown audit action {action!r}: expected one of {list(ACTIONS)}") from None


def _to_entry(row: AuditLogRow) -> AuditEntry:
    return AuditEntry(id=row.id, created_at=row.created_at, actor=row.actor, action=Action(row.action),
                      target=row.target, details=dict(row.details or {}))
