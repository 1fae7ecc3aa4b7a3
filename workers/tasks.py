"""Thin Celery tasks over workers/pipeline.py: ids in, the process's Library re-reads everything.

Every task is idempotent (safe under acks_late redelivery), retries transient failures (store, encoder or
database unreachable: workers/failures.py) with exponential backoff and full jitter, and records
permanent ones: on the notes' registry rows (index) or on the job's progress row (backfill, re-index).
Results are small JSON dicts (only kept when CELERY_RESULT_BACKEND is set).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from celery import Task

from workers import pipeline, runtime
from workers.celery_app import app
from workers.failures import MAX_RETRIES, backoff_s, describe, is_transient

log = logging.getLogger(__name__)


class PipelineTask(Task):
    """Base of the UniNote tasks: late acks, requeue on a lost worker, bounded retries of transient errors."""

    acks_late = True
    reject_on_worker_lost = True
    max_retries = MAX_RETRIES

    def retry_or_give_up(self, exc: Exception, *, args: tuple | None = None,
                         give_up: Callable[[str], Any] | None = None) -> None:
        """Called from an `except` block: retry `exc` if transient and tries remain (raises celery's Retry),
        else call `give_up(reason)` to record it and re-raise `exc` (the task ends FAILURE)."""
        if is_transient(exc) and self.request.retries < self.max_retries:
            countdown = backoff_s(self.request.retries)
            log.warning("%s: transient failure, retry %d/%d in %ss: %s", self.name, self.request.retries + 1,
                        self.max_retries, countdown, describe(exc))
            raise self.retry(exc=exc, countdown=countdown, args=args)
        reason = describe(exc)
        if is_transient(exc):
            reason = f"gave up after {self.request.retries + 1} tries: {reason}"
        if give_up is not None:
            give_up(reason)
        raise exc


@app.task(base=PipelineTask, bind=True, name="uninote.index_notes")
def index_notes_task(self: PipelineTask, note_ids: list[str], force: bool = False,
                     allow_outside: bool = False) -> dict[str, Any]:
    """Index these notes, read from their registry `source` (workers/note_source.py; allow_outside: images
    outside the source file's folder are read). Returns {"indexed": [...], "skipped": [...], "failed": {id: reason}}."""
    try:
        library = runtime.get_library()
        result = pipeline.index_note_ids(library, list(note_ids), force=force, allow_outside=allow_outside)
    except Exception as exc:
        self.retry_or_give_up(exc, give_up=lambda why: _record_notes_failed(note_ids, why))
    return {"indexed": result.indexed, "skipped": result.skipped, "failed": result.failed}


def _record_notes_failed(note_ids: list[str], reason: str) -> None:
    try:
        pipeline.record_failures(runtime.get_library(), {i: reason for i in note_ids})
    except Exception:
        log.exception("could not record the failure of notes %s: %s", note_ids[:5], reason)


@app.task(base=PipelineTask, bind=True, name="uninote.delete_note")
def delete_note_task(self: PipelineTask, note_id: str) -> dict[str, Any]:
    """Remove a note's vectors and tombstone its registry row. Returns {"note_id", "known"}."""
    try:
        known = pipeline.delete_note(runtime.get_library(), note_id)
    except Exception as exc:
        self.retry_or_give_up(exc)
    return {"note_id": note_id, "known": known}


@app.task(base=PipelineTask, bind=True, name="uninote.backfill")
def backfill_task(self: PipelineTask, source: str, cursor: int, backfill_id: int) -> dict[str, Any]:
    """Process the batch of job `backfill_id` at line `cursor`, then queue the next batch (in-process mode:
    loop here). `source` (the job's notes file, as stored on its row) rides along for logs and monitoring;
    the row is what is read. Returns the job's progress after the last batch run here."""
    library = None
    while True:
        try:
            library = runtime.get_library()
            outcome = pipeline.run_backfill_batch(library, backfill_id, cursor)
        except Exception as exc:
            self.retry_or_give_up(exc, args=(source, cursor, backfill_id),
                                  give_up=lambda why: _fail_job(library, backfill_id, why))
        if outcome.next_cursor is None:
            return _progress(outcome.job)
        if not self.request.is_eager:
            backfill_task.apply_async((source, outcome.next_cursor, backfill_id))
            return _progress(outcome.job)
        cursor = outcome.next_cursor


@app.task(base=PipelineTask, bind=True, name="uninote.reindex_library")
def reindex_library_task(self: PipelineTask, model_version: str, checkpoint: str | None = None,
                         backfill_id: int | None = None, cursor: int = 0) -> dict[str, Any]:
    """Re-embed the library with the encoder of `model_version` (loaded from `checkpoint`, a compact checkpoint
    folder; default: this worker's own encoder), one batch per task, writing beside the active vectors; the
    aliases switch when every note is done. Without backfill_id the job is started (or resumed)."""
    library = None
    while True:
        try:
            library = runtime.get_library()
            if backfill_id is None:
                job, _ = pipeline.start_reindex(library.sessions, model_version, checkpoint=checkpoint)
                backfill_id, cursor = job.id, job.cursor
            encoder = encoder_for(library, checkpoint)
            outcome = pipeline.run_reindex_batch(library, encoder, backfill_id, cursor)
        except Exception as exc:
            self.retry_or_give_up(exc, args=(model_version, checkpoint, backfill_id, cursor),
                                  give_up=lambda why: _fail_job(library, backfill_id, why))
        if outcome.next_cursor is None:
            return _progress(outcome.job)
        if not self.request.is_eager:
            reindex_library_task.apply_async((model_version, checkpoint, backfill_id, outcome.next_cursor))
            return _progress(outcome.job)
        cursor = outcome.next_cursor


_encoders: dict[str, Any] = {}


def encoder_for(library, checkpoint: str | None):
    """The encoder of a re-index: the checkpoint's (loaded once per process), or the library's own."""
    if not checkpoint:
        return library.encoder
    if checkpoint not in _encoders:
        from encoder.loading import load_encoder

        settings = library.settings.model_copy(update={"checkpoint": Path(checkpoint), "encoder_url": None})
        _encoders[checkpoint] = load_encoder(settings)
    return _encoders[checkpoint]


@app.task(base=PipelineTask, bind=True, name="uninote.lookback")
def lookback_task(self: PipelineTask, note_id: str, limit: int = 10) -> dict[str, Any]:
    """Match a flagged note against the whole library and save the hits for review.
    Returns {"note_id", "report_id", "verdict", "matches": [[note_id, score, verdict], ...]}."""
    try:
        report = pipeline.lookback(runtime.get_library(), note_id, limit=limit)
    except pipeline.NoteNotFoundError:
        raise
    except Exception as exc:
        self.retry_or_give_up(exc)
    return {"note_id": note_id, "report_id": report.report_id, "verdict": report.verdict,
            "matches": [[m.note_id, float(m.score), m.verdict] for m in report.matches]}


@app.task(bind=True, name="uninote.ping")
def ping_task(self) -> str:
    """A no-op round trip (health checks; benchmarks/bench_workers.py measures the broker's cost per task)."""
    return "pong"


def _fail_job(library, backfill_id: int | None, reason: str) -> None:
    if library is not None and backfill_id is not None:
        pipeline.fail_job(library.sessions, backfill_id, reason)


def _progress(job) -> dict[str, Any]:
    return {"backfill_id": job.id, "status": job.status.value, "cursor": job.cursor, "total": job.total,
            "done": job.done, "failed": job.failed, "rate": job.rate}
