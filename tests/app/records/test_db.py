"""app.records.db: engines on SQLite and PostgreSQL, transactions, clear errors for bad/unreachable URLs."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from app.records.db import make_engine, migrate, normalize_url, safe_url, transaction
from app.records.errors import DatabaseUnreachableError
from app.records.models import DecisionRow, NoteRow

# Nothing listens on port 1 of the loopback: the connection is refused at once.
UNREACHABLE_PG = "postgresql://auditor:hunter2@127.0.0.1:1/uninote"


def test_normalize_url_picks_psycopg3_for_plain_postgres_urls():
    assert normalize_url("postgresql://u:p@db/x").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u:p@db/x").drivername == "postgresql+psycopg"
    assert normalize_url("postgresql+psycopg://u@db/x").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///a/b.db").drivername == "sqlite"


def test_bad_urls_are_refused_naming_the_url_without_password():
    with pytest.raises(ValueError, match="unsupported database") as err:
        normalize_url("mysql://root:s3cret@db/x")
    assert "s3cret" not in str(err.value) and "***" in str(err.value)
    with pytest.raises(ValueError, match="not a database URL") as err:
        normalize_url("nonsense://user:s3cret@host:port/")
    assert "s3cret" not in str(err.value)


def test_safe_url_masks_the_password():
    assert safe_url("postgresql://auditor:hunter2@db:5432/uninote") == "postgresql://auditor:***@db:5432/uninote"


def test_unreachable_postgres_gives_a_clear_error_without_password():
    with pytest.raises(DatabaseUnreachableError) as err:
        make_engine(UNREACHABLE_PG)
    message = str(err.value)
    assert message.startswith("cannot reach database postgresql+psycopg://auditor:***@127.0.0.1:1/uninote")
    assert "hunter2" not in message
    with pytest.raises(DatabaseUnreachableError, match="127.0.0.1:1") as err:
        migrate(UNREACHABLE_PG)
    assert "hunter2" not in str(err.value)


@pytest.mark.services
def test_missing_postgres_database_gives_a_clear_error(postgres_server_url: str):
    from sqlalchemy.engine import make_url

    url = make_url(postgres_server_url).set(database="uninote_no_such_db", password="hunter2")
    with pytest.raises(DatabaseUnreachableError, match="uninote_no_such_db") as err:
        make_engine(url)
    assert "hunter2" not in str(err.value)


def test_sqlite_folder_that_cannot_be_created_gives_a_clear_error(tmp_path: Path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the database folder should be")
    with pytest.raises(DatabaseUnreachableError, match="cannot create the folder"):
        make_engine(f"sqlite:///{blocker}/sub/uninote.db")


def test_sqlite_engine_creates_its_folder_and_sets_pragmas(sqlite_database_url: str, tmp_path: Path):
    engine = make_engine(sqlite_database_url)
    try:
        assert (tmp_path / "records").is_dir()
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 1000
    finally:
        engine.dispose()


def test_transaction_commits_on_success_and_rolls_back_on_error(record_sessions):
    with transaction(record_sessions) as session:
        session.add(NoteRow(note_id="kept", status="pending", content_hash="0" * 64, title="kept"))
    with pytest.raises(RuntimeError, match="boom"):
        with transaction(record_sessions) as session:
            session.add(NoteRow(note_id="dropped", status="pending", content_hash="0" * 64, title="dropped"))
            session.flush()
            raise RuntimeError("boom")
    with transaction(record_sessions) as session:
        assert session.get(NoteRow, "kept") is not None
        assert session.get(NoteRow, "dropped") is None


def test_foreign_keys_and_check_constraints_are_enforced(record_sessions):
    """Both backends refuse a decision on a missing match and an unknown status (SQLite: foreign_keys=ON)."""
    with pytest.raises(IntegrityError):
        with transaction(record_sessions) as session:
            session.add(DecisionRow(match_id=12345, decision="duplicate", moderator="mod"))
    with pytest.raises(IntegrityError):
        with transaction(record_sessions) as session:
            session.add(NoteRow(note_id="n", status="archived", content_hash="0" * 64, title=""))


def test_session_factory_keeps_objects_readable_after_commit(record_sessions):
    with transaction(record_sessions) as session:
        row = NoteRow(note_id="n1", status="pending", content_hash="a" * 64, title="t")
        session.add(row)
    assert row.title == "t"  # expire_on_commit=False: no lazy reload on a closed session
