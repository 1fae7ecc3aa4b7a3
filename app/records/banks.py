"""Banks (risk libraries and allow-lists), their entries and the webhook delivery log (records layer).

A bank is a named set of entries: notes of the library (or imported from another team's export, stored
under `<bank>:<their id>`) and bare PDQ hashes (HMA / ThreatExchange hash lists). `kind` "risk" = known-bad
content, "allow" = known-good content that must never match. Per bank: thresholds (None = the library's
in force), an action label, enabled, and an optional webhook. Plain functions over a Session (the caller
owns the transaction); they return the frozen dataclasses below, never ORM rows (HMA's IBankStore style).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import (Boolean, CheckConstraint, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint,
                        delete, func, select, update)
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.records.errors import RecordNotFoundError
from app.records.models import Base, MatchRow, PortableJSON, UTCDateTime, utcnow
from app.records.paging import check_page

BANK_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")
PDQ_HEX = re.compile(r"^[0-9a-f]{64}$")
MIN_WEBHOOK_SECRET = 16


class BankKind(StrEnum):
    RISK = "risk"  # known-bad notes: a match is reported under the bank, with its action label
    ALLOW = "allow"  # known-good content: a match on it suppresses the other matches it explains


class EntryOrigin(StrEnum):
    LIBRARY = "library"  # a note of this library (added by id or by a moderator's decision)
    IMPORT = "import"  # a note imported with its vectors from another library's export file
    PDQ = "pdq"  # a bare PDQ hash (HMA / ThreatExchange hash list)


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class BankExistsError(ValueError):
    """A bank of that name exists already."""


class BankRow(Base):
    __tablename__ = "banks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(8))
    action: Mapped[str] = mapped_column(String(64))
    duplicate_threshold: Mapped[float | None] = mapped_column(Float)
    infringement_threshold: Mapped[float | None] = mapped_column(Float)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str] = mapped_column(Text, default="")
    webhook_url: Mapped[str | None] = mapped_column(Text)
    webhook_secret: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (CheckConstraint("kind IN ('risk', 'allow')", name="kind"),)


class BankEntryRow(Base):
    __tablename__ = "bank_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    bank_id: Mapped[int] = mapped_column(ForeignKey("banks.id", ondelete="CASCADE"))
    origin: Mapped[str] = mapped_column(String(8))
    note_id: Mapped[str | None] = mapped_column(String(200))
    pdq_hex: Mapped[str | None] = mapped_column(String(64))
    pdq_quality: Mapped[int | None] = mapped_column(Integer)
    details: Mapped[dict[str, Any]] = mapped_column(PortableJSON, default=dict)
    added_by: Mapped[str] = mapped_column(String(200))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    hit_count: Mapped[int] = mapped_column(Integer, default=0)
    last_hit_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint("note_id IS NOT NULL OR pdq_hex IS NOT NULL", name="signal"),
        UniqueConstraint("bank_id", "note_id"),
        UniqueConstraint("bank_id", "pdq_hex"),
        Index("ix_bank_entries_note_id", "note_id"),
        Index("ix_bank_entries_origin", "origin"),
    )


class WebhookDeliveryRow(Base):
    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    bank_id: Mapped[int] = mapped_column(ForeignKey("banks.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(Text)
    event: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(PortableJSON)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_webhook_deliveries_bank_id_id", "bank_id", "id"),
        Index("ix_webhook_deliveries_status", "status"),
    )


# ---- dataclasses ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Bank:
    """A bank without its webhook secret. Thresholds None = the library's in force.
    entries / hits: its entry count and the sum of its entries' hit counts."""

    id: int
    name: str
    kind: BankKind
    action: str
    duplicate_threshold: float | None
    infringement_threshold: float | None
    enabled: bool
    description: str
    webhook_url: str | None
    created_at: datetime
    updated_at: datetime
    entries: int = 0
    hits: int = 0


@dataclass(frozen=True)
class BankEntry:
    """One entry: a stored note (note_id) and/or a PDQ hash (pdq_hex, 64 hex chars; quality None = unknown)."""

    id: int
    bank: str
    origin: EntryOrigin
    note_id: str | None
    pdq_hex: str | None
    pdq_quality: int | None
    details: dict[str, Any]
    added_by: str
    added_at: datetime
    hit_count: int = 0
    last_hit_at: datetime | None = None


@dataclass(frozen=True)
class WebhookDelivery:
    """One notification of a bank's webhook (the delivery log)."""

    id: int
    bank: str
    url: str
    event: str
    payload: dict[str, Any] = field(repr=False)
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


# ---- banks ----------------------------------------------------------------------------------------------
def check_bank_name(name: str) -> str:
    """The name if it is 1-64 chars of a-z 0-9 _ - (starting with a letter or digit). Raises ValueError."""
    if not isinstance(name, str) or not BANK_NAME.match(name):
        raise ValueError(f"name: bank names are 1-64 characters of a-z, 0-9, '_' and '-', got {name!r}")
    return name


def _check_fields(values: dict[str, Any]) -> None:
    if "kind" in values:
        try:
            values["kind"] = BankKind(values["kind"]).value
        except ValueError:
            raise ValueError(f"kind: expected 'risk' or 'allow', got {values['kind']!r}") from None
    if "action" in values:
        action = str(values["action"] or "").strip()
        if not action or len(action) > 64:
            raise ValueError("action: give an action label of 1-64 characters (e.g. 'remove', 'review')")
        values["action"] = action
    for key in ("duplicate_threshold", "infringement_threshold"):
        v = values.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not -1.0 <= v <= 1.0):
            raise ValueError(f"{key}: expected a number in [-1, 1] or null, got {v!r}")
    if "webhook_url" in values and values["webhook_url"] is not None:
        url = str(values["webhook_url"]).strip()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"webhook_url: expected an http(s) URL, got {url!r}")
        values["webhook_url"] = url
    secret = values.get("webhook_secret")
    if secret is not None and len(secret) < MIN_WEBHOOK_SECRET:
        raise ValueError(f"webhook_secret: at least {MIN_WEBHOOK_SECRET} characters")


def create_bank(session: Session, name: str, kind: BankKind | str = BankKind.RISK, action: str = "review", *,
                duplicate_threshold: float | None = None, infringement_threshold: float | None = None,
                enabled: bool = True, description: str = "", webhook_url: str | None = None,
                webhook_secret: str | None = None) -> Bank:
    """A new bank. Raises ValueError naming the bad field, BankExistsError."""
    values = dict(kind=kind, action=action, duplicate_threshold=duplicate_threshold,
                  infringement_threshold=infringement_threshold, webhook_url=webhook_url,
                  webhook_secret=webhook_secret)
    _check_fields(values)
    _check_thresholds(values["duplicate_threshold"], values["infringement_threshold"])
    if values["webhook_url"] and not webhook_secret:
        raise ValueError("webhook_secret: a webhook needs a secret to sign its deliveries (HMAC-SHA256)")
    if _row(session, check_bank_name(name), missing_ok=True) is not None:
        raise BankExistsError(f"name: a bank named {name!r} exists already")
    now = utcnow()
    row = BankRow(name=name, enabled=bool(enabled), description=description or "", created_at=now, updated_at=now,
                  **values)
    session.add(row)
    session.flush()
    return _to_bank(row)


def update_bank(session: Session, name: str, **changes: Any) -> Bank:
    """Change some of kind, action, thresholds, enabled, description, webhook_url, webhook_secret.
    Raises RecordNotFoundError('bank', name), ValueError naming the bad field."""
    allowed = {"kind", "action", "duplicate_threshold", "infringement_threshold", "enabled", "description",
               "webhook_url", "webhook_secret"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValueError(f"{sorted(unknown)[0]}: not a bank setting")
    _check_fields(changes)
    row = _row(session, name)
    dup = changes.get("duplicate_threshold", row.duplicate_threshold)
    inf = changes.get("infringement_threshold", row.infringement_threshold)
    _check_thresholds(dup, inf)
    if changes.get("webhook_url", row.webhook_url) and not changes.get("webhook_secret", row.webhook_secret):
        raise ValueError("webhook_secret: a webhook needs a secret to sign its deliveries (HMAC-SHA256)")
    for key, value in changes.items():
        setattr(row, key, bool(value) if key == "enabled" else value)
    row.updated_at = utcnow()
    session.flush()
    return _with_counts(session, row)


def _check_thresholds(duplicate: float | None, infringement: float | None) -> None:
    if duplicate is not None and infringement is not None and infringement > duplicate:
        raise ValueError(f"infringement_threshold: {infringement} must not exceed duplicate_threshold {duplicate}")


def get_bank(session: Session, name: str) -> Bank | None:
    row = _row(session, name, missing_ok=True)
    return None if row is None else _with_counts(session, row)


def list_banks(session: Session, enabled_only: bool = False) -> list[Bank]:
    """Every bank by name, with entry and hit counts (one grouped query)."""
    counts = {bank_id: (n, hits) for bank_id, n, hits in session.execute(
        select(BankEntryRow.bank_id, func.count(BankEntryRow.id), func.coalesce(func.sum(BankEntryRow.hit_count), 0))
        .group_by(BankEntryRow.bank_id))}
    query = select(BankRow).order_by(BankRow.name)
    if enabled_only:
        query = query.where(BankRow.enabled.is_(True))
    return [_to_bank(r, *counts.get(r.id, (0, 0))) for r in session.scalars(query)]


def webhook_target(session: Session, bank_id: int) -> tuple[str, str] | None:
    """(url, secret) of a bank's webhook, or None when it has none."""
    row = session.get(BankRow, bank_id)
    if row is None or not row.webhook_url or not row.webhook_secret:
        return None
    return row.webhook_url, row.webhook_secret


def delete_bank(session: Session, name: str) -> list[str]:
    """Delete a bank with its entries and delivery log. Returns the note ids of its imported entries (the
    caller removes their vectors). Raises RecordNotFoundError."""
    row = _row(session, name)
    imported = list(session.scalars(select(BankEntryRow.note_id).where(
        BankEntryRow.bank_id == row.id, BankEntryRow.origin == EntryOrigin.IMPORT.value)))
    session.execute(delete(WebhookDeliveryRow).where(WebhookDeliveryRow.bank_id == row.id))
    session.execute(delete(BankEntryRow).where(BankEntryRow.bank_id == row.id))
    session.delete(row)
    session.flush()
    return imported


# ---- entries --------------------------------------------------------------------------------------------
def add_entry(session: Session, bank: str, *, origin: EntryOrigin | str, added_by: str, note_id: str | None = None,
              pdq_hex: str | None = None, pdq_quality: int | None = None,
              details: dict[str, Any] | None = None) -> tuple[BankEntry, bool]:
    """Add a note and/or PDQ hash to a bank. Returns (entry, created); an entry already there is returned
    as it is (created False). Raises RecordNotFoundError('bank', name), ValueError for a bad hash."""
    row = _row(session, bank)
    origin = EntryOrigin(origin)
    if pdq_hex is not None:
        pdq_hex = pdq_hex.strip().lower()
        if not PDQ_HEX.match(pdq_hex):
            raise ValueError(f"pdq: expected 64 hex characters, got {pdq_hex[:80]!r}")
    if note_id is None and pdq_hex is None:
        raise ValueError("an entry needs a note_id or a PDQ hash")
    if not added_by or not added_by.strip():
        raise ValueError("added_by: name who added the entry")
    key = BankEntryRow.note_id == note_id if note_id is not None else BankEntryRow.pdq_hex == pdq_hex
    existing = session.scalars(select(BankEntryRow).where(BankEntryRow.bank_id == row.id, key)).first()
    if existing is not None:
        return _to_entry(existing, row.name), False
    entry = BankEntryRow(bank_id=row.id, origin=origin.value, note_id=note_id, pdq_hex=pdq_hex,
                         pdq_quality=pdq_quality, details=dict(details or {}), added_by=added_by.strip()[:200],
                         added_at=utcnow())
    session.add(entry)
    session.flush()
    return _to_entry(entry, row.name), True


def remove_entry(session: Session, bank: str, entry_id: int) -> BankEntry:
    """Remove one entry. Raises RecordNotFoundError('bank entry', id)."""
    row = _row(session, bank)
    entry = session.get(BankEntryRow, entry_id)
    if entry is None or entry.bank_id != row.id:
        raise RecordNotFoundError("bank entry", entry_id)
    out = _to_entry(entry, row.name)
    session.delete(entry)
    session.flush()
    return out


def list_entries(session: Session, bank: str, offset: int = 0, limit: int = 50) -> list[BankEntry]:
    """One page of a bank's entries, newest first. Raises RecordNotFoundError, ValueError for a bad page."""
    check_page(offset, limit)
    row = _row(session, bank)
    query = (select(BankEntryRow).where(BankEntryRow.bank_id == row.id).order_by(BankEntryRow.id.desc())
             .offset(offset).limit(limit))
    return [_to_entry(e, row.name) for e in session.scalars(query)]


def all_entries(session: Session, bank: str) -> list[BankEntry]:
    """Every entry of a bank, oldest first (export)."""
    row = _row(session, bank)
    query = select(BankEntryRow).where(BankEntryRow.bank_id == row.id).order_by(BankEntryRow.id)
    return [_to_entry(e, row.name) for e in session.scalars(query)]


def memberships(session: Session, note_ids: list[str]) -> dict[str, list[tuple[Bank, BankEntry]]]:
    """note id -> the (bank, entry) pairs that hold it, for these notes (one query; any bank, enabled or not)."""
    if not note_ids:
        return {}
    out: dict[str, list[tuple[Bank, BankEntry]]] = defaultdict(list)
    query = (select(BankEntryRow, BankRow).join(BankRow, BankEntryRow.bank_id == BankRow.id)
             .where(BankEntryRow.note_id.in_(list(set(note_ids)))).order_by(BankRow.name))
    for entry, bank in session.execute(query):
        out[entry.note_id].append((_to_bank(bank), _to_entry(entry, bank.name)))
    return dict(out)


def matched_note(session: Session, match_id: int) -> tuple[str, int]:
    """(matched note id, report id) of a saved match. Raises RecordNotFoundError('match', id)."""
    row = session.get(MatchRow, match_id)
    if row is None:
        raise RecordNotFoundError("match", match_id)
    return row.matched_note_id, row.report_id


def imported_note_ids(session: Session, note_ids: list[str]) -> set[str]:
    """Those of these note ids that are imported bank entries (not notes of this library)."""
    if not note_ids:
        return set()
    return set(session.scalars(select(BankEntryRow.note_id).where(
        BankEntryRow.note_id.in_(list(set(note_ids))), BankEntryRow.origin == EntryOrigin.IMPORT.value)))


def pdq_entries(session: Session) -> list[tuple[Bank, BankEntry]]:
    """Every PDQ-only entry of the enabled banks (the PDQ bank index, app/banks.py)."""
    query = (select(BankEntryRow, BankRow).join(BankRow, BankEntryRow.bank_id == BankRow.id)
             .where(BankRow.enabled.is_(True), BankEntryRow.note_id.is_(None)).order_by(BankEntryRow.id))
    return [(_to_bank(b), _to_entry(e, b.name)) for e, b in session.execute(query)]


def pdq_index_version(session: Session) -> tuple[int, int, datetime | None]:
    """(PDQ entries, their largest id, the newest bank change): unchanged = the PDQ index need not be rebuilt."""
    n, top = session.execute(select(func.count(BankEntryRow.id), func.coalesce(func.max(BankEntryRow.id), 0))
                             .where(BankEntryRow.note_id.is_(None))).one()
    return int(n), int(top), session.scalar(select(func.max(BankRow.updated_at)))


def record_hits(session: Session, entry_ids: list[int]) -> None:
    """Count one hit on each of these entries (now)."""
    if entry_ids:
        session.execute(update(BankEntryRow).where(BankEntryRow.id.in_(sorted(set(entry_ids))))
                        .values(hit_count=BankEntryRow.hit_count + 1, last_hit_at=utcnow()))


# ---- webhook deliveries ---------------------------------------------------------------------------------
def create_delivery(session: Session, bank_id: int, url: str, event: str, payload: dict[str, Any]) -> int:
    """A pending delivery; returns its id."""
    now = utcnow()
    row = WebhookDeliveryRow(bank_id=bank_id, url=url, event=event, payload=payload, created_at=now, updated_at=now)
    session.add(row)
    session.flush()
    return row.id


def get_delivery(session: Session, delivery_id: int) -> WebhookDelivery | None:
    row = session.get(WebhookDeliveryRow, delivery_id)
    return None if row is None else _to_delivery(row, session.get(BankRow, row.bank_id).name)


def delivery_bank_id(session: Session, delivery_id: int) -> int | None:
    row = session.get(WebhookDeliveryRow, delivery_id)
    return None if row is None else row.bank_id


def record_attempt(session: Session, delivery_id: int, *, status: DeliveryStatus, status_code: int | None = None,
                   error: str | None = None) -> None:
    """Count one delivery attempt and its outcome."""
    row = session.get(WebhookDeliveryRow, delivery_id)
    if row is None:
        raise RecordNotFoundError("webhook delivery", delivery_id)
    row.attempts += 1
    row.status = status.value
    row.last_status_code = status_code
    row.last_error = (error or None) and error[:2000]
    row.updated_at = utcnow()
    if status == DeliveryStatus.DELIVERED:
        row.delivered_at = row.updated_at
    session.flush()


def count_deliveries(session: Session) -> dict[str, int]:
    """Deliveries by status (every status present, 0 when none)."""
    counts = dict(session.execute(select(WebhookDeliveryRow.status, func.count(WebhookDeliveryRow.id))
                                  .group_by(WebhookDeliveryRow.status)).all())
    return {s.value: int(counts.get(s.value, 0)) for s in DeliveryStatus}


def list_deliveries(session: Session, bank: str, offset: int = 0, limit: int = 50) -> list[WebhookDelivery]:
    """One page of a bank's delivery log, newest first."""
    check_page(offset, limit)
    row = _row(session, bank)
    query = (select(WebhookDeliveryRow).where(WebhookDeliveryRow.bank_id == row.id)
             .order_by(WebhookDeliveryRow.id.desc()).offset(offset).limit(limit))
    return [_to_delivery(d, row.name) for d in session.scalars(query)]


# ---- rows -> dataclasses ---------------------------------------------------------------------------------
def _row(session: Session, name: str, missing_ok: bool = False) -> BankRow | None:
    row = session.scalars(select(BankRow).where(BankRow.name == name)).first() if isinstance(name, str) else None
    if row is None and not missing_ok:
        raise RecordNotFoundError("bank", name)
    return row


def _with_counts(session: Session, row: BankRow) -> Bank:
    n, hits = session.execute(select(func.count(BankEntryRow.id), func.coalesce(func.sum(BankEntryRow.hit_count), 0))
                              .where(BankEntryRow.bank_id == row.id)).one()
    return _to_bank(row, int(n), int(hits))


def _to_bank(row: BankRow, entries: int = 0, hits: int = 0) -> Bank:
    return Bank(row.id, row.name, BankKind(row.kind), row.action, row.duplicate_threshold, row.infringement_threshold,
                bool(row.enabled), row.description or "", row.webhook_url, row.created_at, row.updated_at,
                int(entries), int(hits))


def _to_entry(row: BankEntryRow, bank: str) -> BankEntry:
    return BankEntry(row.id, bank, EntryOrigin(row.origin), row.note_id, row.pdq_hex, row.pdq_quality,
                     dict(row.details or {}), row.added_by, row.added_at, row.hit_count or 0, row.last_hit_at)


def _to_delivery(row: WebhookDeliveryRow, bank: str) -> WebhookDelivery:
    return WebhookDelivery(row.id, bank, row.url, row.event, dict(row.payload or {}), DeliveryStatus(row.status),
                           row.attempts, row.last_status_code, row.last_error, row.created_at, row.delivered_at)
