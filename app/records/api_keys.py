"""API keys of the HTTP API (app/api): created with scopes, stored hashed, shown once, revocable.

A key reads `un_<key_id>_<secret>`: `key_id` (12 hex chars) is public (logs, the audit log, `uninote key
list`); `secret` (32 random bytes, URL-safe base64) is never stored, only its SHA-256. A key is a random
256-bit token, not a password, so one fast hash suffices (no argon2 per request); comparison is
constant-time (hmac.compare_digest). Plain functions over a Session; they return `ApiKey` dataclasses.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Index, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.records.errors import RecordNotFoundError
from app.records.models import Base, UTCDateTime, utcnow

PREFIX = "un"
_TOKEN = re.compile(r"^un_([0-9a-f]{12})_([A-Za-z0-9_\-]{43})$")


class Scope(StrEnum):
    """What a key may do (app/api routes declare the scope they need)."""

    CHECK = "check"  # POST /v1/check, reading banks
    INDEX = "index"  # POST /v1/notes, DELETE /v1/notes/{id}
    DECIDE = "decide"  # matches of a note, decisions (and adding the matched note to a bank)
    ADMIN = "admin"  # banks, exchange files, the audit log, metrics


SCOPES = tuple(s.value for s in Scope)


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_id: Mapped[str] = mapped_column(String(12), unique=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_api_keys_revoked_at", "revoked_at"),)


@dataclass(frozen=True)
class ApiKey:
    """A key without its secret. revoked_at: None while the key works."""

    key_id: str
    name: str
    scopes: tuple[Scope, ...]
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def actor(self) -> str:
        """How the key appears in the audit log: 'api-key:<key_id>'."""
        return f"api-key:{self.key_id}"

    def allows(self, scope: Scope | str) -> bool:
        return self.revoked_at is None and Scope(scope) in self.scopes


def parse_scopes(scopes: str | list[str] | tuple[str, ...]) -> tuple[Scope, ...]:
    """'check,index' or a list -> scopes, in SCOPES order. Raises ValueError naming an unknown scope."""
    items = [s.strip() for s in (scopes.split(",") if isinstance(scopes, str) else scopes) if s and s.strip()]
    if not items:
        raise ValueError(f"scopes: give at least one of {list(SCOPES)}")
    for s in items:
        if s not in SCOPES:
            raise ValueError(f"scopes: unknown scope {s!r}: expected some of {list(SCOPES)}")
    return tuple(Scope(s) for s in SCOPES if s in items)


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def create_key(session: Session, name: str, scopes: str | list[str] | tuple[str, ...]) -> tuple[ApiKey, str]:
    """A new key. Returns (the key, the token to hand over: shown once, never stored).
    Raises ValueError for an empty name or an unknown scope."""
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise ValueError("name: give the key a name of 1-200 characters (who or what uses it)")
    parsed = parse_scopes(scopes)
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    row = ApiKeyRow(key_id=key_id, secret_sha256=_sha256(secret), name=name, scopes=[s.value for s in parsed],
                    created_at=utcnow())
    session.add(row)
    session.flush()
    return _to_key(row), f"{PREFIX}_{key_id}_{secret}"


def authenticate(session: Session, token: str) -> ApiKey | None:
    """The key a token belongs to, or None (malformed, unknown, wrong secret or revoked)."""
    m = _TOKEN.match(token or "")
    if m is None:
        return None
    row = session.scalars(select(ApiKeyRow).where(ApiKeyRow.key_id == m.group(1))).first()
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.secret_sha256, _sha256(m.group(2))):
        return None
    return _to_key(row)


def revoke_key(session: Session, key_id: str) -> ApiKey:
    """Revoke a key (idempotent: the first revocation time is kept). Raises RecordNotFoundError."""
    row = session.scalars(select(ApiKeyRow).where(ApiKeyRow.key_id == key_id)).first()
    if row is None:
        raise RecordNotFoundError("api key", key_id)
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
    return _to_key(row)


def list_keys(session: Session, include_revoked: bool = True) -> list[ApiKey]:
    """Every key, oldest first."""
    query = select(ApiKeyRow).order_by(ApiKeyRow.id)
    if not include_revoked:
        query = query.where(ApiKeyRow.revoked_at.is_(None))
    return [_to_key(r) for r in session.scalars(query)]


def _to_key(row: ApiKeyRow) -> ApiKey:
    return ApiKey(row.key_id, row.name, tuple(Scope(s) for s in row.scopes), row.created_at, row.revoked_at)
