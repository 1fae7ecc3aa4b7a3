"""Backfill progress rows (app/records/backfills.py) on SQLite and PostgreSQL: the guarded cursor commit that
makes a batch count once, pause/resume states, the re-index work list, and the migration matching the model."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.notes import Note
from app.records import registry
from app.records.backfills import (
    MAX_KEPT_ERRORS,
    BackfillError,
    BackfillState,
    advance_backfill,
    count_notes_to_reindex,
    create_backfill,
    get_backfill,
    latest_backfill,
    list_backfill_views,
    list_backfills,
    notes_to_reindex,
    set_backfill_state,
)
from app.records.db import make_engine, transaction
from app.records.errors import RecordNotFoundError
from app.records.models import Base


def test_migration_matches_the_model(database_url, record_sessions):
    engine = make_engine(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    engine.dispose()
    assert [d for d in diff if "backfills" in str(d)] == []


def test_a_batch_counts_once_and_the_cursor_only_moves_forward(record_sessions):
    with transaction(record_sessions) as s:
        job = create_backfill(s, kind="backfill", source="/data/notes.jsonl", batch_size=4, total=10)
    assert (job.status, job.cursor, job.done) == (BackfillState.RUNNING, 0, 0)
    batch = dict(from_cursor=0, to_cursor=4, to_cursor_bytes=812, done=3, failed=1, elapsed_s=2.0,
                 errors=[BackfillError(2, "n2", "images[0]: corrupt")])
    with transaction(record_sessions) as s:
        assert advance_backfill(s, job.id, **batch)
    with transaction(record_sessions) as s:
        assert not advance_backfill(s, job.id, **batch)  # the same batch delivered twice
    with transaction(record_sessions) as s:
        assert advance_backfill(s, job.id, from_cursor=4, to_cursor=10, to_cursor_bytes=2000, done=6, skipped=2,
                                elapsed_s=2.0, finished=True)
    with record_sessions() as s:
        job = get_backfill(s, job.id)
    assert (job.status, job.cursor, job.cursor_bytes, job.done, job.skipped, job.failed) == (
        BackfillState.DONE, 10, 2000, 9, 2, 1)
    assert job.rate == pytest.approx(10 / 4.0) and job.finished_at is not None
    assert job.errors == [BackfillError(2, "n2", "images[0]: corrupt")]
    assert "10/10 lines" in job.describe()
    with transaction(record_sessions) as s, pytest.raises(ValueError, match="bad batch"):
        advance_backfill(s, job.id, from_cursor=10, to_cursor=5)


def test_a_running_job_without_progress_for_factor_batch_times_is_stalled(record_sessions):
    """What a SIGKILL of every worker leaves: a job that reads `running` forever. It is shown stalled once its
    heartbeat is older than `factor` mean batch times (the batch time limit before its first batch)."""
    from datetime import timedelta

    with transaction(record_sessions) as s:
        job = create_backfill(s, kind="backfill", source="/data/notes.jsonl", batch_size=4, total=40)
        assert advance_backfill(s, job.id, from_cursor=0, to_cursor=8, to_cursor_bytes=900, done=8, elapsed_s=6.0)
        fresh = create_backfill(s, kind="backfill", source="/data/other.jsonl", batch_size=4, total=40)
        paused = create_backfill(s, kind="backfill", source="/data/third.jsonl", batch_size=4, total=40)
        set_backfill_state(s, paused.id, BackfillState.PAUSED)
    with record_sessions() as s:
        job = get_backfill(s, job.id)
    assert job.batches == 2 and job.batch_seconds(300.0) == pytest.approx(3.0)
    beat = job.updated_at
    assert job.stalled_for(beat + timedelta(seconds=14), factor=5, default_batch_s=300) is None  # < 5 x 3 s
    assert job.stalled_for(beat + timedelta(seconds=16), factor=5, default_batch_s=300) == pytest.approx(16)
    with record_sessions() as s:
        views = {v.job.id: v for v in list_backfill_views(s, factor=5, default_batch_s=300,
                                                          now=beat + timedelta(seconds=100))}
    assert views[job.id].stalled_s == pytest.approx(100) and views[job.id].batch_s == pytest.approx(3.0)
    assert views[job.id].describe().endswith(
        f"STALLED: no progress for 100 s (batches take 3.0 s); resume with `uninote backfill --resume {job.id}`")
    assert views[fresh.id].stalled_s is None  # no batch yet: 5 x the 300 s time limit has not passed
    assert views[paused.id].stalled_s is None and "STALLED" not in views[paused.id].describe()


def test_pause_stops_commits_and_resume_allows_them(record_sessions):
    with transaction(record_sessions) as s:
        job = create_backfill(s, kind="backfill", source="/a.jsonl", batch_size=2)
        set_backfill_state(s, job.id, BackfillState.PAUSED)
    with transaction(record_sessions) as s:
        assert not advance_backfill(s, job.id, from_cursor=0, to_cursor=2, done=2)
        set_backfill_state(s, job.id, "running")
    with transaction(record_sessions) as s:
        assert advance_backfill(s, job.id, from_cursor=0, to_cursor=2, done=2)
        failed = set_backfill_state(s, job.id, BackfillState.FAILED, "source gone")
    assert failed.finished and failed.last_error == "source gone"
    with transaction(record_sessions) as s, pytest.raises(ValueError, match="needs last_error"):
        set_backfill_state(s, job.id, BackfillState.FAILED)


def test_kept_errors_are_capped(record_sessions):
    with transaction(record_sessions) as s:
        job = create_backfill(s, kind="backfill", source="/a.jsonl", batch_size=500)
        errors = [BackfillError(i, f"n{i}", "bad") for i in range(MAX_KEPT_ERRORS + 20)]
        advance_backfill(s, job.id, from_cursor=0, to_cursor=500, failed=len(errors), errors=errors)
    with record_sessions() as s:
        job = get_backfill(s, job.id)
    assert job.failed == MAX_KEPT_ERRORS + 20 and len(job.errors) == MAX_KEPT_ERRORS


def test_lookups_and_bad_input(record_sessions):
    with transaction(record_sessions) as s:
        a = create_backfill(s, kind="backfill", source="/a.jsonl", batch_size=2)
        b = create_backfill(s, kind="backfill", source="/a.jsonl", batch_size=2)
        r = create_backfill(s, kind="reindex", source="library", batch_size=2, model_version="v2", total=0)
    with record_sessions() as s:
        assert latest_backfill(s, "backfill", "/a.jsonl").id == b.id
        assert latest_backfill(s, "reindex", "library", model_version="v2").id == r.id
        assert latest_backfill(s, "reindex", "library", model_version="v3") is None
        assert [j.id for j in list_backfills(s)] == [r.id, b.id, a.id]
        with pytest.raises(RecordNotFoundError):
            get_backfill(s, 10_000)
        with pytest.raises(ValueError, match="unknown job kind"):
            create_backfill(s, kind="nope", source="x", batch_size=1)
        with pytest.raises(ValueError, match="batch_size"):
            create_backfill(s, kind="backfill", source="x", batch_size=0)
        with pytest.raises(ValueError, match="model_version"):
            create_backfill(s, kind="reindex", source="library", batch_size=1)


def test_the_reindex_work_list_shrinks_as_notes_are_reembedded(record_sessions):
    with transaction(record_sessions) as s:
        for i in range(5):
            registry.upsert_pending(s, Note(note_id=f"n{i}", title=f"t{i}"), "a" * 64, "/src.jsonl")
            registry.mark_indexed(s, f"n{i}", "v1")
        registry.upsert_pending(s, Note(note_id="p", title="pending"), "b" * 64, "/src.jsonl")
    with record_sessions() as s:
        assert count_notes_to_reindex(s, "v2") == 5
        assert notes_to_reindex(s, "v2", 2) == [("n0", "/src.jsonl"), ("n1", "/src.jsonl")]
    with transaction(record_sessions) as s:
        registry.mark_indexed(s, "n0", "v2")
        registry.mark_failed(s, "n1", "no source")
    with record_sessions() as s:
        assert [i for i, _ in notes_to_reindex(s, "v2", 10)] == ["n2", "n3", "n4"]
        assert count_notes_to_reindex(s, "v1") == 1  # n0 now has v2
