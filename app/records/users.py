"""Dashboard accounts: moderators and admins, with argon2id password hashes (argon2-cffi, RFC 9106).

Plain functions over a Session (the caller owns the transaction: app.records.db.transaction); they
return `User` dataclasses, never ORM rows, and never the password hash. The table is created by
Alembic revision 0003; 0004 adds `session_generation`, bumped by every password, role or active change so
that the account's dashboard sessions end (app/records/web_sessions.py). Every account change should also be written to the audit log
(app.records.audit_log); app/moderation.py does both in one transaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Boolean, CheckConstraint, Integer, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.records.errors import RecordNotFoundError
from app.records.models import Base, UTCDateTime, utcnow
from app.records.paging import check_page

USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9_.@\-]{2,64}$")
MIN_PASSWORD_CHARS = 8
RESERVED_USERNAMES = {"cli", "system", "anonymous"}  # actors of non-dashboard changes / unknown names in the log
_HASHER = PasswordHasher()  # argon2id, the library's RFC 9106 "low memory" defaults


class Role(StrEnum):
    MODERATOR = "moderator"  # checks notes, decides on matches, reads the audit log
    ADMIN = "admin"  # also changes thresholds and manages accounts


ROLES = tuple(r.value for r in Role)


class UserExistsError(ValueError):
    """An account with this username exists already."""


class UserRow(Base):
    """One dashboard account. password_hash: argon2id PHC string ($argon2id$v=19$...)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    __table_args__ = (CheckConstraint(f"role IN {ROLES!r}", name="role"),)


@dataclass(frozen=True)
class User:
    """An account as the dashboard sees it (no password hash). Timestamps are timezone-aware UTC."""

    id: int
    username: str
    role: Role
    active: bool
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None

    @property
    def is_admin(self) -> bool:
        return self.active and self.role == Role.ADMIN


def hash_password(password: str) -> str:
    """argon2id PHC string of `password`. Raises ValueError for a password under MIN_PASSWORD_CHARS."""
    check_password_strength(password)
    return _HASHER.hash(password)


def check_password_strength(password: str) -> None:
    """Raises ValueError unless `password` is a str of at least MIN_PASSWORD_CHARS characters."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"password must have at least {MIN_PASSWORD_CHARS} characters")


def role_of(role: Role | str) -> Role:
    """The Role named by `role`. Raises ValueError naming the accepted roles."""
    try:
        return Role(role)
    except ValueError:
        raise ValueError(f"unknown role {role!r}: expected one of {list(ROLES)}") from None


def check_username(username: str) -> str:
    """The username stripped. Raises ValueError unless it is 2-64 chars of letters, digits, _ . @ -
    and not one of RESERVED_USERNAMES."""
    name = username.strip() if isinstance(username, str) else ""
    if not USERNAME_PATTERN.match(name):
        raise ValueError(f"username {username!r} must be 2-64 characters of letters, digits, '_', '.', '@', '-'")
    if name.lower() in RESERVED_USERNAMES:
        raise ValueError(f"username {name!r} is reserved")
    return name


def add_user(session: Session, username: str, password: str, role: Role | str = Role.MODERATOR) -> User:
    """Create an active account. Raises ValueError for a bad username/password/role, UserExistsError when
    the username is taken."""
    name, role = check_username(username), role_of(role)
    if session.scalar(select(UserRow.id).where(UserRow.username == name)) is not None:
        raise UserExistsError(f"user {name!r} exists already")
    now = utcnow()
    row = UserRow(username=name, password_hash=hash_password(password), role=role.value, active=True,
                  created_at=now, updated_at=now)
    session.add(row)
    session.flush()
    return to_user(row)


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The active account whose password is `password`, or None (unknown user, wrong password, disabled).

    A successful sign-in sets last_login_at and re-hashes the password when the hasher's parameters have
    changed since it was stored. Unknown users cost one hash too, so timing does not reveal them.
    """
    row = session.scalar(select(UserRow).where(UserRow.username == (username or "").strip()))
    if row is None:
        _verify(_DUMMY_HASH, password or "")
        return None
    if not _verify(row.password_hash, password or "") or not row.active:
        return None
    if _HASHER.check_needs_rehash(row.password_hash):
        row.password_hash = _HASHER.hash(password)
    row.last_login_at = utcnow()
    session.flush()
    return to_user(row)


def _verify(stored: str, password: str) -> bool:
    try:
        return _HASHER.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


_DUMMY_HASH = _HASHER.hash("not-a-real-password")


def get_user(session: Session, username: str) -> User | None:
    """The account named `username`, or None."""
    row = session.scalar(select(UserRow).where(UserRow.username == (username or "").strip()))
    return None if row is None else to_user(row)


def list_users(session: Session, offset: int = 0, limit: int = 100) -> list[User]:
    """One page of accounts by username. Raises ValueError for a bad page."""
    check_page(offset, limit)
    query = select(UserRow).order_by(UserRow.username).offset(offset).limit(limit)
    return [to_user(r) for r in session.scalars(query)]


def count_users(session: Session, role: Role | str | None = None, active_only: bool = False) -> int:
    """Number of accounts (of `role`, active ones only if asked)."""
    query = select(func.count(UserRow.id))
    if role is not None:
        query = query.where(UserRow.role == role_of(role).value)
    if active_only:
        query = query.where(UserRow.active.is_(True))
    return int(session.scalar(query) or 0)


def set_role(session: Session, username: str, role: Role | str) -> User:
    """Change an account's role (ends its dashboard sessions). Raises RecordNotFoundError('user', name), ValueError for a bad role."""
    row = _row(session, username)
    row.role, row.updated_at = role_of(role).value, utcnow()
    _end_sessions(row)
    session.flush()
    return to_user(row)


def set_active(session: Session, username: str, active: bool) -> User:
    """Enable or disable an account (a disabled account cannot sign in; its dashboard sessions end).
    Raises RecordNotFoundError."""
    row = _row(session, username)
    row.active, row.updated_at = bool(active), utcnow()
    _end_sessions(row)
    session.flush()
    return to_user(row)


def set_password(session: Session, username: str, password: str) -> User:
    """Replace an account's password (ends its dashboard sessions). Raises RecordNotFoundError, ValueError for
    a short password."""
    row = _row(session, username)
    row.password_hash, row.updated_at = hash_password(password), utcnow()
    _end_sessions(row)
    session.flush()
    return to_user(row)


def _end_sessions(row: UserRow) -> None:
    row.session_generation = (row.session_generation or 0) + 1


def _row(session: Session, username: str) -> UserRow:
    row = session.scalar(select(UserRow).where(UserRow.username == (username or "").strip()))
    if row is None:
        raise RecordNotFoundError("user", username)
    return row


def to_user(row: UserRow) -> User:
    """The dataclass of a row (for app.records modules that join users)."""
    return User(id=row.id, username=row.username, role=Role(row.role), active=bool(row.active),
                created_at=row.created_at, updated_at=row.updated_at, last_login_at=row.last_login_at)
