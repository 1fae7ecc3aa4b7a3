"""app/records/web_sessions.py on SQLite and PostgreSQL: a session lives until it is closed, expires, or its
account's password, role or active flag changes; the table keeps no usable token."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.records import users, web_sessions
from app.records.db import transaction
from app.records.web_sessions import WebSessionRow


@pytest.fixture
def alice(record_sessions):
    with transaction(record_sessions) as s:
        return users.add_user(s, "alice", "correct horse", "admin")


def _open(sessions, user_id, ttl_s=3600.0):
    with transaction(sessions) as s:
        return web_sessions.open_session(s, user_id, ttl_s, "127.0.0.1")


def _find(sessions, token):
    with sessions() as s:
        return web_sessions.find_session(s, token)


def test_a_session_is_found_until_closed(record_sessions, alice):
    token = _open(record_sessions, alice.id)
    found = _find(record_sessions, token)
    assert found is not None and found.user.username == "alice" and found.key == web_sessions.token_key(token)
    with record_sessions() as s:
        keys = s.scalars(select(WebSessionRow.key)).all()
    assert keys == [web_sessions.token_key(token)] and token not in keys  # only the hash is stored
    assert _find(record_sessions, token + "x") is None
    with transaction(record_sessions) as s:
        assert web_sessions.close_session(s, token) is True
        assert web_sessions.close_session(s, token) is False
    assert _find(record_sessions, token) is None


@pytest.mark.parametrize("change", [
    lambda s: users.set_password(s, "alice", "another horse"),
    lambda s: users.set_role(s, "alice", "moderator"),
    lambda s: users.set_active(s, "alice", False),
])
def test_account_changes_end_every_session(record_sessions, alice, change):
    first, second = _open(record_sessions, alice.id), _open(record_sessions, alice.id)
    with transaction(record_sessions) as s:
        change(s)
        users.set_active(s, "alice", True)
    assert _find(record_sessions, first) is None and _find(record_sessions, second) is None
    assert _find(record_sessions, _open(record_sessions, alice.id)) is not None  # a new sign-in works


def test_expired_sessions_are_refused_and_purged(record_sessions, alice):
    old = _open(record_sessions, alice.id, ttl_s=3600)
    with transaction(record_sessions) as s:
        row = s.get(WebSessionRow, web_sessions.token_key(old))
        row.expires_at = row.expires_at - timedelta(hours=2)
    assert _find(record_sessions, old) is None
    _open(record_sessions, alice.id)  # opening a session purges expired rows
    with record_sessions() as s:
        assert web_sessions.count_sessions(s, alice.id) == 1
    with transaction(record_sessions) as s, pytest.raises(LookupError):
        web_sessions.open_session(s, alice.id + 1000, 60, None)
