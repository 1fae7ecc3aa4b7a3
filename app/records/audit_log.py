"""The append-only audit log: who did what and when (decisions, threshold changes, account changes,
sign-ins).

Append-only three times over: this module has no update or delete function; Alembic revision 0003 puts
triggers on the table that refuse UPDATE and DELETE (SQLite and PostgreSQL); and on PostgreSQL revision
0005 gives the application its own role (`uninote_app`) without ownership and without UPDATE, DELETE or
TRUNCATE on the log, so it cannot disable or drop those triggers either (docs/scaling.md: two roles).
Whoever owns the table can still rewrite it, so every entry is also hash-chained to the one before
(app/records/audit_chain.py) and the newest entry's id and hash are kept in `audit_chain_head`:
`verify_chain` (`uninote audit verify`) finds a deleted, edited, inserted or reordered entry, and a
deleted tail. Appends are serialised on the head row (a row lock on PostgreSQL, the write lock on
SQLite), so concurrent writers never fork the chain.
Plain functions over a Session; they return `AuditEntry` / `ChainReport` dataclasses.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Index, Integer, String, Text, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.records.audit_chain import GENESIS_HASH, HASH_HEX_LEN, entry_hash
from app.records.models import Base, PortableJSON, UTCDateTime, utcnow
from app.records.paging import check_page

HEAD_ID = 1  # the one row of audit_chain_head
VERIFY_PAGE = 1000  # entries read per query by verify_chain


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
    prev_hash: Mapped[str | None] = mapped_column(String(HASH_HEX_LEN))  # row_hash of the entry before
    row_hash: Mapped[str | None] = mapped_column(String(HASH_HEX_LEN))  # audit_chain.entry_hash of this entry

    __table_args__ = (
        Index("ix_audit_log_created_at", "created_at"),
        Index("ix_audit_log_action_created_at", "action", "created_at"),
        Index("ix_audit_log_actor", "actor"),
    )


class AuditChainHeadRow(Base):
    """The newest entry of the chain (one row, id HEAD_ID): a deleted tail of the log shows up against it."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_id: Mapped[int] = mapped_column(Integer)  # 0 while the log is empty
    last_hash: Mapped[str] = mapped_column(String(HASH_HEX_LEN))  # GENESIS_HASH while the log is empty


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
    # Take the chain's lock first (the no-op UPDATE waits for any other appender), then read the head.
    session.execute(update(AuditChainHeadRow).where(AuditChainHeadRow.id == HEAD_ID)
                    .values(last_id=AuditChainHeadRow.last_id).execution_options(synchronize_session=False))
    head = session.get(AuditChainHeadRow, HEAD_ID, populate_existing=True)
    if head is None:
        raise RuntimeError("audit_chain_head is missing: run `uninote migrate` (revision 0005 creates it)")
    row = AuditLogRow(id=head.last_id + 1, created_at=utcnow(), actor=actor.strip(), action=action.value,
                      target=target, details=payload, prev_hash=head.last_hash)
    row.row_hash = _hash_of(row)
    session.add(row)
    session.flush()
    head.last_id, head.last_hash = row.id, row.row_hash
    session.flush()
    return _to_entry(row)


@dataclass(frozen=True)
class ChainReport:
    """What verify_chain found: entries read, the newest entry's id and hash (keep them elsewhere to prove
    later that nothing was rewritten), and one line per problem (empty: the chain is intact)."""

    entries: int
    head_id: int
    head_hash: str
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def describe(self) -> str:
        state = "intact" if self.ok else f"BROKEN ({len(self.problems)} problems)"
        return f"audit log {state}: {self.entries} entries, head entry {self.head_id} hash {self.head_hash}"


def verify_chain(session: Session, anchor: tuple[int, str] | None = None) -> ChainReport:
    """Recompute every entry's hash in id order and check each link and the head row.

    anchor: (entry id, row_hash) printed by an earlier verification; that entry must still be there with
    that hash (a chain rewritten from scratch by the table's owner is caught only this way).
    Reads VERIFY_PAGE entries per query. Never raises for tampering: it is reported in `problems`.
    """
    problems: list[str] = []
    expected_prev, last_id, entries = GENESIS_HASH, 0, 0
    anchor_seen = anchor is None
    while True:
        rows = session.scalars(select(AuditLogRow).where(AuditLogRow.id > last_id)
                               .order_by(AuditLogRow.id).limit(VERIFY_PAGE)).all()
        for row in rows:
            entries += 1
            if row.prev_hash != expected_prev:
                problems.append(f"entry {row.id}: its link to the entry before is broken (an entry before it "
                                f"was deleted, inserted or edited)")
            if row.row_hash != _hash_of(row):
                problems.append(f"entry {row.id}: its content does not match its hash (edited)")
            if anchor is not None and row.id == anchor[0]:
                anchor_seen = True
                if row.row_hash != anchor[1]:
                    problems.append(f"entry {row.id}: hash {row.row_hash} is not the anchored {anchor[1]} "
                                    f"(the chain was rewritten)")
            expected_prev, last_id = row.row_hash, row.id
        if len(rows) < VERIFY_PAGE:
            break
        session.expunge_all()
    if not anchor_seen:
        problems.append(f"entry {anchor[0]} of the anchor is missing (deleted)")
    head = session.get(AuditChainHeadRow, HEAD_ID, populate_existing=True)
    if head is None:
        problems.append("the chain head row is missing (audit_chain_head was emptied)")
    elif (head.last_id, head.last_hash) != (last_id, expected_prev):
        problems.append(f"the head names entry {head.last_id} ({head.last_hash[:12]}...) but the newest entry is "
                        f"{last_id} ({expected_prev[:12]}...): entries at the end were deleted or the head edited")
    return ChainReport(entries, last_id, expected_prev, problems)


def _hash_of(row: AuditLogRow) -> str:
    return entry_hash(row.prev_hash or "", row.id, row.created_at, row.actor, row.action, row.target, row.details)


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
