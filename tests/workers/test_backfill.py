"""Backfills in the in-process (broker-less) mode on real grocery notes: batches, bad input, pause/resume,
duplicate and stale deliveries of a batch (what acks_late redelivery produces after a crash)."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import update

from app.records import registry
from app.records.backfills import BackfillRow, BackfillState, get_backfill
from app.records.db import transaction
from app.records.models import utcnow
from app.records.types import NoteStatus
from workers import pipeline
from workers.backfill import pause_backfill, resume_backfill, run_backfill


def test_backfill_indexes_every_note_and_records_bad_input(library, grocery_file):
    path = grocery_file(5, corrupt=(3,), bad_lines=("{not json", json.dumps({"note_id": "empty"})))
    seen = []
    job = run_backfill(path.parent, progress_callback=seen.append, batch_size=3)

    assert job.status == BackfillState.DONE and job.finished_at is not None
    assert (job.cursor, job.total) == (7, 7)
    assert (job.done, job.failed, job.skipped) == (4, 3, 0)
    assert job.rate and job.rate > 0 and job.elapsed_s > 0
    assert [s.cursor for s in seen] == [3, 6, 7]  # one report per committed batch
    errors = {(e.line, e.note_id): e.error for e in job.errors}
    assert "images[0]" in errors[(4, "g003")]  # the corrupt photo, named
    assert errors[(6, None)].startswith("not JSON")
    assert "empty note" in errors[(7, "empty")]

    assert library.store.count_notes() == 4
    with library.sessions() as s:
        assert registry.count_by_status(s)["indexed"] == 4
        failed = registry.get_note_record(s, "g003")
    assert failed.status == NoteStatus.FAILED and "images[0]" in failed.last_error
    assert failed.source == str(path.resolve())


def test_a_line_that_is_not_utf8_is_a_failed_record_not_mojibake(library, grocery_file):
    """Backfill once decoded bytes with errors="replace": the line was indexed with U+FFFD in its title."""
    path = grocery_file(3)
    lines = path.read_bytes().splitlines(keepends=True)
    lines.insert(1, b'{"note_id": "latin1", "title": "caf\xe9", "body": "au lait"}\n')
    path.write_bytes(b"".join(lines))
    job = run_backfill(path, batch_size=2)
    assert (job.done, job.failed) == (3, 1), job.describe()
    assert [(e.line, e.note_id, e.error[:28]) for e in job.errors] == [(2, None, "not UTF-8: byte 0xe9 at colu")]
    with library.sessions() as s:
        assert registry.get_note_record(s, "latin1") is None


def test_rerunning_a_finished_backfill_reencodes_nothing(library, grocery_file):
    path = grocery_file(3)
    first = run_backfill(path, batch_size=2)
    again = run_backfill(path, batch_size=2)
    assert again.id != first.id and again.status == BackfillState.DONE
    assert (again.done, again.skipped, again.failed) == (3, 3, 0)  # unchanged notes are skipped
    assert library.store.count_notes() == 3


def test_pause_then_resume_continues_from_the_cursor(library, grocery_file):
    path = grocery_file(5)

    def pause_after_first_batch(status):
        if status.cursor == 2:
            pause_backfill(status.id)

    paused = run_backfill(path, progress_callback=pause_after_first_batch, batch_size=2)
    assert paused.status == BackfillState.PAUSED and paused.cursor == 2 and paused.done == 2
    assert library.store.count_notes() == 2

    resumed = resume_backfill(paused.id)
    assert resumed.status == BackfillState.DONE and resumed.id == paused.id
    assert (resumed.cursor, resumed.done, resumed.skipped) == (5, 5, 0)  # no committed batch was redone
    assert library.store.count_notes() == 5


def test_run_backfill_on_the_same_file_resumes_the_unfinished_job(library, grocery_file):
    path = grocery_file(4)
    job, created = pipeline.start_backfill(library, path, batch_size=2)
    assert created
    first = pipeline.run_backfill_batch(library, job.id, 0)  # a worker ran one batch, then every worker died
    assert first.committed and first.next_cursor == 2
    finished = run_backfill(path, batch_size=2)
    assert finished.id == job.id and (finished.cursor, finished.done, finished.skipped) == (4, 4, 0)


def test_a_duplicate_delivery_of_a_committed_batch_changes_nothing(library, grocery_file):
    path = grocery_file(4)
    job, _ = pipeline.start_backfill(library, path, batch_size=2)
    first = pipeline.run_backfill_batch(library, job.id, 0)
    again = pipeline.run_backfill_batch(library, job.id, 0)  # the same message, delivered a second time
    assert first.committed and not again.committed and again.next_cursor is None
    assert (again.job.cursor, again.job.done) == (2, 2)
    assert library.store.count_notes() == 2


def test_a_stale_delivery_restarts_a_dead_chain_from_the_stored_cursor(library, grocery_file):
    path = grocery_file(4)
    job, _ = pipeline.start_backfill(library, path, batch_size=2)
    pipeline.run_backfill_batch(library, job.id, 0)  # committed; the worker died before queueing the next
    with transaction(library.sessions) as s:
        s.execute(update(BackfillRow).where(BackfillRow.id == job.id)
                  .values(updated_at=utcnow() - timedelta(seconds=pipeline.STALE_AFTER_S + 60)))
    redelivered = pipeline.run_backfill_batch(library, job.id, 0)  # acks_late: the old message comes back
    assert not redelivered.committed and redelivered.next_cursor == 2
    with library.sessions() as s:
        assert get_backfill(s, job.id).done == 2
