"""Moderators' and admins' actions, each written together with its audit-log entry in one transaction:
decide on a match, change the audit thresholds, manage accounts, sign in.

The dashboard and the Python client call these same functions (no logic in the UI). Permission checks
live here too: `require_admin` refuses a non-admin actor whatever called the function.

Thresholds: the current values are the latest `thresholds` entry of the audit log (an admin's change),
else the settings (DUPLICATE_THRESHOLD, INFRINGEMENT_THRESHOLD). The log is the single, append-only
source of truth, so every process that reads it (dashboard, client, workers) agrees.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy.orm import Session, sessionmaker

from app.records import audit_log, reports, users, web_sessions
from app.records.audit_log import Action
from app.records.db import transaction
from app.records.errors import RecordNotFoundError
from app.records.types import Decision, DecisionRecord
from app.records.users import Role, User
from app.settings import Settings

CLI_ACTOR = "cli"  # the actor of command-line account changes (`uninote user add`): counts as admin
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class PermissionDeniedError(PermissionError):
    """The actor may not do this (e.g. a moderator changing thresholds). `actor` and `action` name it."""

    def __init__(self, actor: str, action: str):
        self.actor, self.action = actor, action
        super().__init__(f"{actor!r} may not {action}: admins only")


@dataclass(frozen=True)
class Thresholds:
    """Audit thresholds on the cosine score scale: duplicate >= infringement, both in [-1, 1].
    source: "settings" or "audit_log:<entry id>" (who set them is in that entry)."""

    duplicate: float
    infringement: float
    source: str = "settings"

    def __post_init__(self) -> None:
        for name in ("duplicate", "infringement"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not -1.0 <= value <= 1.0:
                raise ValueError(f"{name} threshold must be a number in [-1, 1], got {value!r}")
        if self.infringement > self.duplicate:
            raise ValueError(f"infringement threshold {self.infringement} must not exceed the duplicate "
                             f"threshold {self.duplicate}")


# ---- decisions ----------------------------------------------------------------------------------------
def decide(sessions: sessionmaker[Session], match_id: int, decision: Decision | str, moderator: str,
           comment: str | None = None) -> DecisionRecord:
    """Record a moderator's decision on one match and its audit-log entry, in one transaction.

    Raises ValueError for an unknown decision or an empty moderator, RecordNotFoundError('match', id).
    """
    with transaction(sessions) as s:
        record = reports.record_decision(s, match_id, decision, comment, moderator)
        audit_log.append(s, record.moderator, Action.DECISION, f"match:{match_id}", {
            "decision": record.decision.value, "comment": record.comment, "report_id": record.report_id,
            "matched_note_id": record.matched_note_id, "query_note_id": record.query_note_id,
            "score": record.score,
        })
    return record


# ---- thresholds ---------------------------------------------------------------------------------------
def current_thresholds(sessions: sessionmaker[Session], settings: Settings) -> Thresholds:
    """The thresholds in force: the latest admin change in the audit log, else the settings."""
    with sessions() as s:
        entry = audit_log.latest(s, Action.THRESHOLDS)
    if entry is None:
        return Thresholds(settings.duplicate_threshold, settings.infringement_threshold)
    return Thresholds(float(entry.details["duplicate"]), float(entry.details["infringement"]), f"audit_log:{entry.id}")


def set_thresholds(sessions: sessionmaker[Session], settings: Settings, actor: str, duplicate: float,
                   infringement: float) -> Thresholds:
    """An admin sets new thresholds (logged with the previous ones). Raises PermissionDeniedError for a
    non-admin actor, ValueError for values out of [-1, 1] or infringement > duplicate."""
    new = Thresholds(float(duplicate), float(infringement))  # validates
    previous = current_thresholds(sessions, settings)
    with transaction(sessions) as s:
        require_admin(s, actor, "change thresholds")
        entry = audit_log.append(s, actor, Action.THRESHOLDS, "thresholds", {
            "duplicate": new.duplicate, "infringement": new.infringement,
            "previous": {"duplicate": previous.duplicate, "infringement": previous.infringement},
        })
    return Thresholds(new.duplicate, new.infringement, f"audit_log:{entry.id}")


# ---- accounts -----------------------------------------------------------------------------------------
def require_admin(session: Session, actor: str, what: str) -> User:
    """The actor's account if it is an active admin; "cli" (the operator's shell) counts as admin.
    Raises PermissionDeniedError otherwise."""
    if actor == CLI_ACTOR:
        return User(0, CLI_ACTOR, Role.ADMIN, True, _EPOCH, _EPOCH, None)
    user = users.get_user(session, actor)
    if user is None or not user.is_admin:
        raise PermissionDeniedError(actor, what)
    return user


def create_user(sessions: sessionmaker[Session], actor: str, username: str, password: str,
                role: Role | str = Role.MODERATOR) -> User:
    """Create an account (admins, or the CLI). Raises PermissionDeniedError, ValueError for a bad
    username/password/role, users.UserExistsError."""
    with transaction(sessions) as s:
        require_admin(s, actor, "manage accounts")
        user = users.add_user(s, username, password, role)
        audit_log.append(s, actor, Action.USER_ADD, f"user:{user.username}", {"role": user.role.value})
    return user


def change_role(sessions: sessionmaker[Session], actor: str, username: str, role: Role | str) -> User:
    """Change an account's role. An admin cannot demote themselves (so one admin always remains who can
    undo it). Raises PermissionDeniedError, RecordNotFoundError, ValueError."""
    with transaction(sessions) as s:
        require_admin(s, actor, "manage accounts")
        before = _existing(s, username)
        if before.username == actor and users.role_of(role) != Role.ADMIN:
            raise ValueError("an admin cannot remove their own admin role")
        user = users.set_role(s, username, role)
        audit_log.append(s, actor, Action.USER_ROLE, f"user:{user.username}",
                         {"role": user.role.value, "previous": before.role.value})
    return user


def change_active(sessions: sessionmaker[Session], actor: str, username: str, active: bool) -> User:
    """Enable or disable an account. An admin cannot disable themselves. Raises PermissionDeniedError,
    RecordNotFoundError, ValueError."""
    with transaction(sessions) as s:
        require_admin(s, actor, "manage accounts")
        before = _existing(s, username)
        if before.username == actor and not active:
            raise ValueError("an admin cannot disable their own account")
        user = users.set_active(s, username, active)
        audit_log.append(s, actor, Action.USER_ACTIVE, f"user:{user.username}",
                         {"active": user.active, "previous": before.active})
    return user


def change_password(sessions: sessionmaker[Session], actor: str, username: str, password: str) -> User:
    """Replace an account's password (admins for anyone; everyone for themselves). The log never holds
    the password. Raises PermissionDeniedError, RecordNotFoundError, ValueError for a short password."""
    with transaction(sessions) as s:
        if actor != username:
            require_admin(s, actor, "manage accounts")
        user = users.set_password(s, username, password)
        audit_log.append(s, actor, Action.USER_PASSWORD, f"user:{user.username}", {})
    return user


def _existing(session: Session, username: str) -> User:
    user = users.get_user(session, username)
    if user is None:
        raise RecordNotFoundError("user", username)
    return user


# ---- signing in ---------------------------------------------------------------------------------------
UNKNOWN_ACTOR = "anonymous"  # the actor of a refused sign-in under a name that has no account


def sign_in(sessions: sessionmaker[Session], username: str, password: str,
            client_host: str | None = None) -> User | None:
    """The account if the password is right (and the account active), else None; both outcomes are
    logged, never with the password. A refused sign-in under an existing account's name is logged under
    that name; under an unknown name, as UNKNOWN_ACTOR with the first 16 hex digits of the name's SHA-256
    (an attacker cannot write names of their choosing into the log)."""
    with transaction(sessions) as s:
        user = users.authenticate(s, username, password)
        if user is not None:
            audit_log.append(s, user.username, Action.SIGN_IN, f"user:{user.username}", {"client": client_host})
            return user
        known = users.get_user(s, username) if isinstance(username, str) else None
        if known is not None:
            audit_log.append(s, known.username, Action.SIGN_IN_FAILED, f"user:{known.username}",
                             {"client": client_host})
        else:
            audit_log.append(s, UNKNOWN_ACTOR, Action.SIGN_IN_FAILED, "user:?",
                             {"client": client_host, "name_sha256": name_digest(username)})
    return None


def name_digest(username: object) -> str:
    """First 16 hex digits of SHA-256 of the stripped name: how the log names an unknown account."""
    text = username.strip() if isinstance(username, str) else ""
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:16]


def sign_out(sessions: sessionmaker[Session], token: str, client_host: str | None = None) -> User | None:
    """End the dashboard session of cookie token `token` and log it, in one transaction; returns its
    account, or None when the token names no live session (nothing is logged)."""
    with transaction(sessions) as s:
        web = web_sessions.find_session(s, token)
        web_sessions.close_session(s, token)
        if web is not None:
            audit_log.append(s, web.user.username, Action.SIGN_OUT, f"user:{web.user.username}",
                             {"client": client_host})
    return None if web is None else web.user


def record_event(sessions: sessionmaker[Session], actor: str, action: Action | str, target: str | None,
                 details: dict | None = None) -> None:
    """Write one audit-log entry on its own (security events of the dashboard: throttled sign-ins, refused
    files). Raises ValueError like app.records.audit_log.append."""
    with transaction(sessions) as s:
        audit_log.append(s, actor, action, target, details)
