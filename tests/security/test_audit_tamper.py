"""Attack replay: rewriting the audit log (issue 12, item 8), on SQLite and PostgreSQL.

PostgreSQL with the two roles of docs/scaling.md: `uninote migrate` as the owner (MIGRATION_DATABASE_URL)
makes DATABASE_URL's login a member of `uninote_app`. As that application role every way of erasing history
that worked before (DELETE, UPDATE, TRUNCATE, DISABLE TRIGGER, DROP TRIGGER, session_replication_role =
replica) is refused by the database. Whoever can still rewrite the table (the owner on PostgreSQL, anyone
who can write the SQLite file) is caught by the hash chain: `uninote audit verify` names the deleted or
edited entry and exits 1.
"""

from __future__ import annotations

import sqlite3
import uuid
from datetime import datetime, timezone

import psycopg
import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DatabaseError

from app import moderation
from app.cli import main
from app.records import audit_log
from app.records.audit_log import Action
from app.records.db import make_engine, migrate, session_factory, transaction
from app.records.roles import audit_log_exposure, migrate_with_roles
from app.settings import Settings, get_settings

pytestmark = pytest.mark.services


def _write_history(sessions) -> None:
    """Five entries through the application's own functions (accounts, thresholds, sign-ins)."""
    moderation.create_user(sessions, moderation.CLI_ACTOR, "admin1", "admin-password-1", "admin")
    moderation.create_user(sessions, "admin1", "mod1", "moderator-password", "moderator")
    moderation.set_thresholds(sessions, Settings(), "admin1", 0.93, 0.7)
    with transaction(sessions) as s:
        audit_log.append(s, "mod1", Action.SIGN_IN, "user:mod1", {"client": "127.0.0.1", "big": 1e16, "n": 3})
        audit_log.append(s, "mod1", Action.SIGN_IN_FAILED, "user:mod1", {"client": "127.0.0.1"})


def _verify(sessions, anchor=None):
    with sessions() as s:
        return audit_log.verify_chain(s, anchor=anchor)


def _cli_verify(monkeypatch, database_url: str, *args: str):
    monkeypatch.setenv("DATABASE_URL", database_url)
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(main, ["audit", "verify", *args])
    finally:
        get_settings.cache_clear()


# ---- SQLite: whoever can write the file ---------------------------------------------------------------
@pytest.fixture
def sqlite_log(sqlite_database_url):
    migrate(sqlite_database_url)
    engine = make_engine(sqlite_database_url)
    sessions = session_factory(engine)
    _write_history(sessions)
    yield sqlite_database_url, sessions, make_url(sqlite_database_url).database
    engine.dispose()


def _sqlite_tamper(path: str, *statements: str) -> None:
    """Run statements on the raw file with the append-only triggers lifted (what any local user can do)."""
    with sqlite3.connect(path) as db:
        triggers = db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_log'"
                              ).fetchall()
        for name, _ in triggers:
            db.execute(f"DROP TRIGGER {name}")
        for statement in statements:
            db.execute(statement)
        for _, sql in triggers:
            db.execute(sql)


def test_sqlite_an_intact_log_verifies_and_the_cli_prints_its_head(sqlite_log, monkeypatch):
    url, sessions, _ = sqlite_log
    report = _verify(sessions)
    assert report.ok and report.entries == 5 and report.head_id == 5, report.problems
    out = _cli_verify(monkeypatch, url)
    assert out.exit_code == 0, out.output
    assert f"intact: 5 entries, head entry 5 hash {report.head_hash}" in out.output
    assert _cli_verify(monkeypatch, url, "--anchor", f"3:{_hash_of(sessions, 3)}").exit_code == 0


def _hash_of(sessions, entry_id: int) -> str:
    with sessions() as s:
        return s.get(audit_log.AuditLogRow, entry_id).row_hash


def test_sqlite_triggers_still_refuse_update_and_delete(sqlite_log):
    _, sessions, _ = sqlite_log
    for statement in ("DELETE FROM audit_log WHERE id = 2", "UPDATE audit_log SET actor = 'nobody' WHERE id = 2"):
        with pytest.raises(DatabaseError, match="append-only"):
            with transaction(sessions) as s:
                s.execute(text(statement))


def test_sqlite_a_deleted_entry_is_found(sqlite_log, monkeypatch):
    url, sessions, path = sqlite_log
    _sqlite_tamper(path, "DELETE FROM audit_log WHERE id = 3")
    report = _verify(sessions)
    assert not report.ok and any(p.startswith("entry 4: its link") for p in report.problems), report.problems
    out = _cli_verify(monkeypatch, url)
    assert out.exit_code == 1 and "tampered: entry 4" in out.output and "BROKEN" in out.output


def test_sqlite_an_edited_entry_is_found(sqlite_log, monkeypatch):
    url, sessions, path = sqlite_log
    _sqlite_tamper(path, "UPDATE audit_log SET details = '{\"duplicate\": 0.99, \"infringement\": 0.7}' WHERE id = 3")
    report = _verify(sessions)
    assert report.problems == ["entry 3: its content does not match its hash (edited)"]
    assert _cli_verify(monkeypatch, url).exit_code == 1


def test_sqlite_a_deleted_tail_and_a_rewritten_chain_are_found(sqlite_log, monkeypatch):
    url, sessions, path = sqlite_log
    anchor = (4, _hash_of(sessions, 4))
    _sqlite_tamper(path, "DELETE FROM audit_log WHERE id = 5")
    assert any("entries at the end were deleted" in p for p in _verify(sessions).problems)
    # the full rewrite: entry 4 edited, the chain recomputed after it and the head moved
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT prev_hash, created_at FROM audit_log WHERE id = 4").fetchone()
    from app.records.audit_chain import entry_hash

    created = datetime.fromisoformat(row[1]).replace(tzinfo=timezone.utc)
    forged = entry_hash(row[0], 4, created, "mod1", "sign_in", "user:mod1", {"client": "10.0.0.66"})
    _sqlite_tamper(path, f"UPDATE audit_log SET details = '{{\"client\": \"10.0.0.66\"}}', row_hash = '{forged}' "
                         "WHERE id = 4", f"UPDATE audit_chain_head SET last_id = 4, last_hash = '{forged}'")
    assert _verify(sessions).ok  # the chain alone cannot tell a complete rewrite...
    out = _cli_verify(monkeypatch, url, "--anchor", f"{anchor[0]}:{anchor[1]}")  # ...a kept anchor can
    assert out.exit_code == 1 and "the chain was rewritten" in out.output


def test_concurrent_appends_keep_one_chain(sqlite_log):
    from concurrent.futures import ThreadPoolExecutor

    _, sessions, _ = sqlite_log

    def append(i: int) -> None:
        with transaction(sessions) as s:
            audit_log.append(s, f"user{i}", Action.SIGN_IN_FAILED, f"user:user{i}", {"i": i})

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(append, range(40)))
    report = _verify(sessions)
    assert report.ok and report.entries == 45, report.problems


# ---- PostgreSQL: the owner migrates, the application appends -------------------------------------------
@pytest.fixture
def postgres_roles(postgres_database_url, monkeypatch):
    """(owner URL, application URL): `uninote migrate` with both set, then history written as the application."""
    owner_url = postgres_database_url
    login = f"uninote_app_test_{uuid.uuid4().hex[:8]}"
    app_url = make_url(owner_url).set(username=login, password="app-password-0123").render_as_string(
        hide_password=False)
    settings = Settings(database_url=app_url, migration_database_url=owner_url)
    monkeypatch.setenv("MIGRATION_DATABASE_URL", owner_url)
    monkeypatch.setenv("DATABASE_URL", app_url)
    get_settings.cache_clear()
    out = CliRunner().invoke(main, ["migrate"])
    get_settings.cache_clear()
    assert out.exit_code == 0, out.output
    assert "warning" not in out.output  # the application's role cannot rewrite the log
    assert migrate_with_roles(settings) == []  # idempotent
    try:
        yield owner_url, app_url
    finally:
        admin = make_url(owner_url).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP ROLE IF EXISTS "{login}"')


def _as(url: str, statement: str) -> None:
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(statement)


def test_postgres_the_application_role_appends_and_reads_but_cannot_erase(postgres_roles, monkeypatch):
    owner_url, app_url = postgres_roles
    engine = make_engine(app_url)
    try:
        migrate(app_url)  # at head: a no-op the application's role may run (Library.open does)
        sessions = session_factory(engine)
        _write_history(sessions)
        assert _verify(sessions).ok
        assert audit_log_exposure(engine) is None
    finally:
        engine.dispose()
    attacks = {
        "DELETE FROM audit_log": "permission denied",
        "UPDATE audit_log SET actor = 'nobody'": "permission denied",
        "TRUNCATE audit_log": "permission denied",
        "ALTER TABLE audit_log DISABLE TRIGGER ALL": "must be owner",
        "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change": "must be owner",
        "DROP TRIGGER audit_log_no_change ON audit_log": "must be owner",
        "SET session_replication_role = replica": "permission denied",
        "DROP TABLE audit_log": "must be owner",
        "UPDATE alembic_version SET version_num = '0001'": "permission denied",
    }
    for statement, refusal in attacks.items():
        with pytest.raises(psycopg.Error, match=refusal):
            _as(app_url, statement)
    out = _cli_verify(monkeypatch, app_url)
    assert out.exit_code == 0 and "intact: 5 entries" in out.output, out.output


def test_postgres_the_owner_is_refused_by_the_triggers_and_caught_by_the_chain(postgres_roles, monkeypatch):
    owner_url, app_url = postgres_roles
    engine = make_engine(app_url)
    try:
        _write_history(session_factory(engine))
    finally:
        engine.dispose()
    with pytest.raises(psycopg.Error, match="append-only"):
        _as(owner_url, "DELETE FROM audit_log WHERE id = 2")
    _as(owner_url, "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change; "
                   "DELETE FROM audit_log WHERE id = 2; "
                   "UPDATE audit_log SET details = '{\"duplicate\": 0.99}' WHERE id = 3; "
                   "ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_change")
    out = _cli_verify(monkeypatch, app_url)
    assert out.exit_code == 1, out.output
    assert "tampered: entry 3: its link to the entry before is broken" in out.output
    assert "tampered: entry 3: its content does not match its hash (edited)" in out.output
    _as(owner_url, "SET session_replication_role = replica; DELETE FROM audit_log WHERE id = 5")  # a superuser's way
    out = _cli_verify(monkeypatch, app_url)
    assert "entries at the end were deleted" in out.output


def test_postgres_a_single_role_setup_is_warned_about(postgres_database_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", postgres_database_url)
    monkeypatch.delenv("MIGRATION_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    try:
        out = CliRunner().invoke(main, ["migrate"])
    finally:
        get_settings.cache_clear()
    assert out.exit_code == 0 and "warning: DATABASE_URL's role 'postgres' is a superuser" in out.output
