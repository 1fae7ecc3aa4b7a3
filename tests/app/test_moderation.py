"""app/moderation.py on SQLite and PostgreSQL: each action writes its audit-log entry; admin-only actions
refuse moderators; sign-ins are logged either way."""

from __future__ import annotations

import pytest

from app import moderation
from app.moderation import CLI_ACTOR, PermissionDeniedError
from app.records import audit_log, reports
from app.records.audit_log import Action
from app.records.db import transaction
from app.settings import Settings


@pytest.fixture
def people(record_sessions):
    moderation.create_user(record_sessions, CLI_ACTOR, "root1", "admin password", "admin")
    moderation.create_user(record_sessions, "root1", "mod1", "moderator password", "moderator")
    return record_sessions


def _entries(sessions, action=None):
    with sessions() as s:
        return audit_log.list_entries(s, action=action)


def test_account_changes_are_admin_only_and_logged(people):
    with pytest.raises(PermissionDeniedError):
        moderation.create_user(people, "mod1", "mod2", "some password")
    with pytest.raises(PermissionDeniedError):
        moderation.change_role(people, "mod1", "mod1", "admin")
    assert moderation.change_role(people, "root1", "mod1", "admin").is_admin
    with pytest.raises(ValueError, match="own admin role"):
        moderation.change_role(people, "root1", "root1", "moderator")
    with pytest.raises(ValueError, match="own account"):
        moderation.change_active(people, "root1", "root1", False)
    moderation.change_password(people, "mod1", "mod1", "a new password")  # oneself: allowed
    log = _entries(people)
    assert [(e.actor, e.action, e.target) for e in log] == [
        ("mod1", Action.USER_PASSWORD, "user:mod1"),
        ("root1", Action.USER_ROLE, "user:mod1"),
        ("root1", Action.USER_ADD, "user:mod1"),
        ("cli", Action.USER_ADD, "user:root1"),
    ]
    assert all("password" not in str(e.details) for e in log)


def test_thresholds_come_from_the_log(people):
    settings = Settings(duplicate_threshold=0.9, infringement_threshold=0.75)
    assert moderation.current_thresholds(people, settings).source == "settings"
    with pytest.raises(PermissionDeniedError):
        moderation.set_thresholds(people, settings, "mod1", 0.95, 0.8)
    with pytest.raises(ValueError, match="must not exceed"):
        moderation.set_thresholds(people, settings, "root1", 0.7, 0.8)
    new = moderation.set_thresholds(people, settings, "root1", 0.95, 0.8)
    assert (new.duplicate, new.infringement) == (0.95, 0.8)
    assert moderation.current_thresholds(people, settings) == new
    assert _entries(people, Action.THRESHOLDS)[0].details["previous"] == {"duplicate": 0.9, "infringement": 0.75}


def test_decide_and_sign_in_are_logged(people):
    with transaction(people) as s:
        report_id = reports.save_report(s, {"verdict": "duplicate", "matches": [
            {"note_id": "n1", "score": 0.95, "verdict": "duplicate"}]}, query_note_id="q1")
        match_id = reports.get_report(s, report_id).matches[0].id
    record = moderation.decide(people, match_id, "infringing", "mod1", "logo reused")
    assert record.decision.value == "infringing"
    entry = _entries(people, Action.DECISION)[0]
    assert entry.actor == "mod1" and entry.details["matched_note_id"] == "n1" and entry.details["score"] == 0.95
    assert moderation.sign_in(people, "mod1", "wrong password") is None
    assert moderation.sign_in(people, "mod1", "moderator password").username == "mod1"
    assert [e.action for e in _entries(people)[:2]] == [Action.SIGN_IN, Action.SIGN_IN_FAILED]


def test_refused_sign_ins_under_unknown_names_do_not_write_the_name(people):
    name = "<script>alert(1)</script>" + "x" * 500
    assert moderation.sign_in(people, name, "whatever password", "10.0.0.9") is None
    entry = _entries(people, Action.SIGN_IN_FAILED)[0]
    assert (entry.actor, entry.target) == (moderation.UNKNOWN_ACTOR, "user:?")
    assert entry.details == {"client": "10.0.0.9", "name_sha256": moderation.name_digest(name)}
    assert "script" not in entry.describe()
    assert moderation.sign_in(people, "mod1", "wrong password") is None  # a real account keeps its name
    assert _entries(people, Action.SIGN_IN_FAILED)[0].actor == "mod1"


def test_sign_out_ends_the_session_and_is_logged(people):
    from app.records import users, web_sessions

    with transaction(people) as s:
        token = web_sessions.open_session(s, users.get_user(s, "mod1").id, 60, "10.0.0.9")
    assert moderation.sign_out(people, token, "10.0.0.9").username == "mod1"
    assert moderation.sign_out(people, token) is None  # already ended: nothing logged twice
    assert [(e.actor, e.action) for e in _entries(people, Action.SIGN_OUT)] == [("mod1", Action.SIGN_OUT)]
