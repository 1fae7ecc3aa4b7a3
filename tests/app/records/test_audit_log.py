"""app/records/audit_log.py on SQLite and PostgreSQL: entries, filters, paging, and the database itself
refusing UPDATE and DELETE (append-only triggers of migration 0003)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from app.records import audit_log
from app.records.audit_log import Action
from app.records.db import transaction


def test_append_and_list_newest_first(record_sessions):
    with transaction(record_sessions) as s:
        audit_log.append(s, "alice", Action.USER_ADD, "user:bob", {"role": "moderator"})
        audit_log.append(s, "bob", "decision", "match:1", {"decision": "duplicate", "score": 0.93})
        audit_log.append(s, "alice", Action.THRESHOLDS, "thresholds", {"duplicate": 0.9, "infringement": 0.7})
    with record_sessions() as s:
        entries = audit_log.list_entries(s)
        assert [e.action for e in entries] == [Action.THRESHOLDS, Action.DECISION, Action.USER_ADD]
        assert entries[1].details == {"decision": "duplicate", "score": 0.93}
        assert entries[0].created_at.tzinfo is not None
        assert [e.actor for e in audit_log.list_entries(s, actor="alice")] == ["alice", "alice"]
        assert audit_log.count_entries(s, action="decision") == 1
        assert audit_log.list_entries(s, offset=1, limit=1)[0].action == Action.DECISION
        assert audit_log.latest(s, Action.THRESHOLDS).details["duplicate"] == 0.9
        assert "bob decision match:1" in entries[1].describe()


def test_bad_entries_are_refused(record_sessions):
    with transaction(record_sessions) as s:
        with pytest.raises(ValueError, match="actor"):
            audit_log.append(s, " ", Action.DECISION)
        with pytest.raises(ValueError, match="unknown audit action"):
            audit_log.append(s, "alice", "delete_everything")
        with pytest.raises(ValueError, match="JSON"):
            audit_log.append(s, "alice", Action.DECISION, details={"score": float("nan")})


@pytest.mark.parametrize("statement", ["UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"])
def test_the_database_refuses_to_rewrite_history(record_sessions, statement):
    with transaction(record_sessions) as s:
        audit_log.append(s, "alice", Action.SIGN_IN, "user:alice")
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction(record_sessions) as s:
            s.execute(text(statement))
    with record_sessions() as s:
        assert [e.actor for e in audit_log.list_entries(s)] == ["alice"]
