"""Server-side dashboard sessions: one row per sign-in, so that a session can be ended before its cookie
expires.

The cookie carries a random token (32 bytes, URL-safe base64); the table keeps only its SHA-256, so a copy
of the database holds no usable session. A session is valid while its row exists, it has not expired, its
account is active, and the account's `session_generation` is the one it was opened with: signing out
deletes the row; a password, role or active change bumps the generation (app/records/users.py), ending
every session of the account at once. Created by Alembic revision 0004.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, Index, Integer, String, delete, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.records.models import Base, UTCDateTime, utcnow
from app.records.users import User, UserRow, to_user

TOKEN_BYTES = 32


class WebSessionRow(Base):
    """One signed-in session. key: hex SHA-256 of the cookie's token; generation: the account's
    session_generation when it signed in; client: the address it signed in from."""

    __tablename__ = "web_sessions"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, ForeignKey("users.id", ondelete="CASCADE"))
    generation: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    client: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_web_sessions_user_id", "user_id"),
        Index("ix_web_sessions_expires_at", "expires_at"),
    )


@dataclass(frozen=True)
class WebSession:
    """A valid session: `key` identifies it (never the token), `user` is its active account."""

    key: str
    user: User
    created_at: datetime
    expires_at: datetime


def token_key(token: str) -> str:
    """The table key of a cookie token: hex SHA-256 (64 characters)."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def open_session(session: Session, user_id: int, ttl_s: float, client: str | None = None) -> str:
    """A new session of account `user_id` valid for ttl_s seconds; returns the token for the cookie.
    Also deletes every expired session row (the table stays small). Raises LookupError when the account
    does not exist."""
    generation = session.scalar(select(UserRow.session_generation).where(UserRow.id == user_id))
    if generation is None:
        raise LookupError(f"no account with id {user_id}")
    now = utcnow()
    session.execute(delete(WebSessionRow).where(WebSessionRow.expires_at <= now))
    token = secrets.token_urlsafe(TOKEN_BYTES)
    session.add(WebSessionRow(key=token_key(token), user_id=user_id, generation=generation, created_at=now,
                              expires_at=now + timedelta(seconds=ttl_s), client=(client or None) and client[:64]))
    session.flush()
    return token


def find_session(session: Session, token: str) -> WebSession | None:
    """The valid session of `token`, else None (unknown, expired, ended by a generation bump, account
    disabled). One indexed query."""
    row = session.execute(
        select(WebSessionRow, UserRow).join(UserRow, UserRow.id == WebSessionRow.user_id)
        .where(WebSessionRow.key == token_key(token))
    ).first()
    if row is None:
        return None
    web, user = row
    if web.expires_at <= utcnow() or web.generation != user.session_generation or not user.active:
        return None
    return WebSession(web.key, to_user(user), web.created_at, web.expires_at)


def close_session(session: Session, token: str) -> bool:
    """End the session of `token` (signing out). True when there was one."""
    return session.execute(delete(WebSessionRow).where(WebSessionRow.key == token_key(token))).rowcount > 0


def count_sessions(session: Session, user_id: int) -> int:
    """Rows of account `user_id` (valid or not yet purged)."""
    return int(session.scalar(select(func.count()).where(WebSessionRow.user_id == user_id)) or 0)
