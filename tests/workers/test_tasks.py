"""The Celery tasks run in-process (no broker: task_always_eager) on real grocery notes: transient failures
are retried with Celery's retry machinery, permanent ones recorded; delete, look-back, submit, re-index."""

from __future__ import annotations

import json
import shutil

import httpx
import pytest
from qdrant_client.http.exceptions import ResponseHandlingException

from app.library import Library
from app.records import registry, reports
from app.records.db import make_engine, migrate, session_factory
from app.records.types import NoteStatus
from app.store import EdgeStore
from encoder.loading import load_encoder
from tests.workers.conftest import note_record, write_notes_file
from workers import runtime
from workers.celery_app import app, configure
from workers.failures import MAX_RETRIES
from workers.submit import submit_notes
from workers.tasks import delete_note_task, index_notes_task, lookback_task


class RefusingStore(EdgeStore):
    """The real embedded store, except that its first `refusals` writes fail the way an unreachable Qdrant
    server fails in qdrant-client (ResponseHandlingException around an httpx.ConnectError)."""

    refusals = 0
    calls = 0

    def upsert_note(self, encoded, pdq, payload):
        type(self).calls += 1
        if type(self).calls <= type(self).refusals:
            raise ResponseHandlingException(httpx.ConnectError("[Errno 111] Connection refused"))
        return super().upsert_note(encoded, pdq, payload)


@pytest.fixture
def refusing_library(worker_settings):
    import torch

    torch.set_num_threads(2)
    configure(app, worker_settings)
    url = worker_settings.resolved_database_url
    migrate(url)
    store_cls = type("Refusing", (RefusingStore,), {"refusals": 0, "calls": 0})
    lib = Library(worker_settings, load_encoder(worker_settings), store_cls.from_settings(worker_settings),
                  session_factory(make_engine(url)))
    runtime.use_library(lib)
    try:
        yield lib, store_cls
    finally:
        runtime.use_library(None)
        lib.close()


def test_a_store_that_refuses_the_first_calls_is_retried_until_it_works(refusing_library, grocery_file):
    lib, store_cls = refusing_library
    path = grocery_file(2)
    store_cls.refusals = 2
    submission = submit_notes(path)  # registers the notes, then index_notes_task runs here (eager)
    assert submission.queued == ["g000", "g001"]
    assert store_cls.calls == 2 + 2  # two refused writes, then every note once
    assert lib.store.count_notes() == 2
    with lib.sessions() as s:
        assert registry.count_by_status(s)["indexed"] == 2


@pytest.mark.slow
def test_a_store_that_stays_down_fails_the_task_and_records_why_on_the_notes(refusing_library, grocery_file):
    lib, store_cls = refusing_library
    path = grocery_file(1)
    store_cls.refusals = 10 ** 6
    with pytest.raises(ResponseHandlingException):
        submit_notes(path)
    assert store_cls.calls == MAX_RETRIES + 1
    with lib.sessions() as s:
        rec = registry.get_note_record(s, "g000")
    assert rec.status == NoteStatus.FAILED
    assert rec.last_error.startswith(f"gave up after {MAX_RETRIES + 1} tries: ResponseHandlingException")


def test_a_corrupt_image_is_recorded_and_does_not_block_the_batch(library, grocery_file):
    path = grocery_file(4, corrupt=(1,))
    submit_notes(path, chunk_size=4)
    with library.sessions() as s:
        recs = {i: registry.get_note_record(s, i) for i in ("g000", "g001", "g002", "g003")}
    assert [recs[i].status for i in ("g000", "g002", "g003")] == [NoteStatus.INDEXED] * 3
    assert recs["g001"].status == NoteStatus.FAILED and "images[0]" in recs["g001"].last_error
    assert library.store.count_notes() == 3


def test_index_task_reads_notes_by_id_from_their_source(library, grocery_file):
    path = grocery_file(3)
    submission = submit_notes(path, note_ids=["g001", "nope"])
    assert submission.queued == ["g001"] and submission.unknown == ["nope"]
    out = index_notes_task.delay(["g001", "g002"]).get()
    assert out["skipped"] == ["g001"]  # already current: not encoded again
    assert "not in the registry" in out["failed"]["g002"]  # never submitted: no source to read it from
    assert library.store.count_notes() == 1


def test_delete_task_is_idempotent(library, grocery_file):
    path = grocery_file(2)
    submit_notes(path)
    assert delete_note_task.delay("g000").get() == {"note_id": "g000", "known": True}
    assert delete_note_task.delay("g000").get() == {"note_id": "g000", "known": True}
    assert delete_note_task.delay("never-seen").get() == {"note_id": "never-seen", "known": False}
    assert library.store.count_notes() == 1 and library.store.get_note("g000") is None
    with library.sessions() as s:
        assert registry.get_note_record(s, "g000").status == NoteStatus.DELETED
    out = index_notes_task.delay(["g000"]).get()  # an index request queued before the delete
    assert out["skipped"] == ["g000"] and library.store.count_notes() == 1


def test_lookback_records_the_planted_copy_for_review(library, grocery_file, tmp_path):
    library_file = grocery_file(4)
    submit_notes(library_file)
    original = library.store.get_note("g002").payload
    first = json.loads(library_file.read_text().splitlines()[2])
    (tmp_path / "flagged").mkdir()
    reused = shutil.copyfile(first["images"][0], tmp_path / "flagged" / "reused.jpg")  # the same photo, reposted
    flagged = write_notes_file(tmp_path / "flagged", [
        note_record("risk-1", reused, "Bargain! " + original["title"], "Repost, no credit."),
    ])
    submit_notes(flagged)
    out = lookback_task.delay("risk-1").get()
    assert out["matches"][0][0] == "g002"  # the note whose photo was reused, at rank 1
    assert "risk-1" not in [m[0] for m in out["matches"]]  # never its own hit
    with library.sessions() as s:
        saved = reports.get_report(s, out["report_id"])
    assert saved.query_note_id == "risk-1" and saved.matches[0].matched_note_id == "g002"


def test_lookback_of_an_unknown_note_says_so(library):
    from workers.pipeline import NoteNotFoundError

    with pytest.raises(NoteNotFoundError, match="not in the registry"):
        lookback_task.delay("ghost").get()


@pytest.mark.slow
def test_reindex_writes_beside_the_old_vectors_and_switches_when_complete(library, grocery_file, tmp_path):
    from encoder.checkpoint import save_checkpoint
    from encoder.compact import CompactUniNote
    from encoder.config import CompactConfig
    from workers.backfill import reindex_library

    submit_notes(grocery_file(3))
    old = library.encoder.model_version
    new = save_checkpoint(CompactUniNote(CompactConfig(seed=1)), tmp_path / "ckpt-v2")
    assert new != old and library.store.active_version() == old

    seen = []

    def watch(status):  # search keeps answering from the old vectors until the last batch switches
        seen.append((status.done, library.store.active_version(), library.store.count_notes()))

    job = reindex_library(new, tmp_path / "ckpt-v2", batch_size=2, progress_callback=watch)
    assert job.status.value == "done" and (job.total, job.done, job.failed) == (3, 3, 0)
    assert seen == [(2, old, 3), (3, old, 3), (3, new, 3)]  # two batches, then the switch
    assert library.store.active_version() == new and set(library.store.versions()) == {old, new}
    assert library.store.count_notes() == 3 and library.store.get_note("g001").payload["model_version"] == new
    with library.sessions() as s:
        assert {r.model_version for r in registry.list_notes(s, status="indexed")} == {new}
    again = reindex_library(new, tmp_path / "ckpt-v2")  # nothing left to do: done at once
    assert again.id != job.id and again.status.value == "done" and again.done == 0


def test_reindex_refuses_an_encoder_of_another_version(library, grocery_file):
    from workers.backfill import reindex_library
    from workers.pipeline import JobError

    submit_notes(grocery_file(1))
    with pytest.raises(JobError, match="targets model version 'abc'"):
        reindex_library("abc")  # the workers' own encoder is not version abc
    with library.sessions() as s:
        from app.records.backfills import latest_backfill

        assert "targets model version" in latest_backfill(s, "reindex", "library", "abc").last_error
