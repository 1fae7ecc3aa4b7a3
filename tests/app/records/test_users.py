"""app/records/users.py on SQLite and PostgreSQL: argon2id hashes, sign-in, roles, disabling."""

from __future__ import annotations

import pytest

from app.records import users
from app.records.db import transaction
from app.records.errors import RecordNotFoundError
from app.records.users import Role, UserExistsError


def test_add_and_authenticate(record_sessions):
    with transaction(record_sessions) as s:
        user = users.add_user(s, "alice", "correct horse", "admin")
    assert user.role == Role.ADMIN and user.is_admin and user.last_login_at is None
    with transaction(record_sessions) as s:
        row = s.get(users.UserRow, user.id)
        assert row.password_hash.startswith("$argon2id$") and "correct horse" not in row.password_hash
        assert users.authenticate(s, "alice", "wrong password") is None
        assert users.authenticate(s, "nobody", "correct horse") is None
        signed_in = users.authenticate(s, " alice ", "correct horse")
    assert signed_in is not None and signed_in.last_login_at is not None


def test_bad_input_is_refused_with_the_reason(record_sessions):
    with transaction(record_sessions) as s:
        users.add_user(s, "bob", "long enough")
        with pytest.raises(UserExistsError):
            users.add_user(s, "bob", "another password")
        with pytest.raises(ValueError, match="at least 8"):
            users.add_user(s, "carol", "short")
        with pytest.raises(ValueError, match="unknown role"):
            users.add_user(s, "carol", "long enough", "root")
        with pytest.raises(ValueError, match="username"):
            users.add_user(s, "c a r o l", "long enough")
        with pytest.raises(ValueError, match="reserved"):
            users.add_user(s, "cli", "long enough")


def test_roles_disabling_and_passwords(record_sessions):
    with transaction(record_sessions) as s:
        users.add_user(s, "dave", "first password")
        assert users.set_role(s, "dave", "admin").is_admin
        users.set_active(s, "dave", False)
        assert users.authenticate(s, "dave", "first password") is None  # disabled
        users.set_active(s, "dave", True)
        users.set_password(s, "dave", "second password")
        assert users.authenticate(s, "dave", "first password") is None
        assert users.authenticate(s, "dave", "second password") is not None
        assert [u.username for u in users.list_users(s, limit=10)] == ["dave"]
        assert users.count_users(s, Role.ADMIN, active_only=True) == 1
        with pytest.raises(RecordNotFoundError):
            users.set_role(s, "nobody", "admin")
