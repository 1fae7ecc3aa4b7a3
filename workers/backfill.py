"""Start, watch, pause and resume backfills and re-indexes (the client side of workers/tasks.py).

A backfill is a job row (app/records/backfills.py) plus a chain of `backfill_task` messages, one batch
each; the row's cursor says which lines are committed. So:
- `run_backfill(path)` starts a job for the notes file, or resumes the unfinished one of that file (after a
  pause, a permanent failure, or a crash of every worker: re-running the command is the restart), then
  follows the row until the job finishes (or returns at once with detach);
- `pause_backfill(id)` stops the chain after the batch in progress; `resume_backfill(id)` queues the
  batch at the stored cursor. A resumed job never redoes a committed batch; if the old chain is still
  alive the two deliveries of a batch race on the cursor and only one commits (the other stops).
- `list_jobs()` gives the recent jobs, each with how long it has been stalled (a running job whose chain
  died with every worker: no progress for BACKFILL_STALL_FACTOR batch times), for `uninote backfill
  --status` and the dashboard; `uninote backfill --resume ID` is resume_backfill.
- A broker that cannot be reached when a batch is queued fails the job (reason kept; running the command
  again resumes it) and raises app.service_errors.ServiceUnavailableError naming the broker.
With a broker these functions only touch the records database (never the vector store, which a worker
holds); without one (the embedded default) the batches run right here, in this process.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Callable

from sqlalchemy.orm import Session, sessionmaker

from app.records.backfills import (BackfillKind, BackfillState, BackfillStatus, BackfillView, get_backfill,
                                   list_backfill_views, set_backfill_state)
from app.records.db import make_engine, migrate, session_factory, transaction
from app.service_errors import ServiceUnavailableError, mask_url, service_failure
from app.settings import Settings, get_settings
from workers import pipeline, runtime
from workers.celery_app import app, is_eager
from workers.failures import MAX_RETRIES, backoff_s, describe, is_transient
from workers.tasks import backfill_task, encoder_for, reindex_library_task

POLL_INTERVAL_S = 1.0  # how often a followed job's row is read (broker mode)
ProgressCallback = Callable[[BackfillStatus], None]

_sessions: dict[str, sessionmaker[Session]] = {}
_sessions_lock = threading.Lock()


def job_sessions(settings: Settings | None = None) -> sessionmaker[Session]:
    """Sessions on the records database (migrated to head once per process). In-process mode: the Library's."""
    if is_eager(app):
        return runtime.get_library(settings).sessions
    return records_sessions(settings)


def records_sessions(settings: Settings | None = None) -> sessionmaker[Session]:
    """Sessions on the records database alone (migrated to head once per process): no store, no encoder."""
    url = (settings or get_settings()).resolved_database_url
    with _sessions_lock:
        if url not in _sessions:
            migrate(url)
            _sessions[url] = session_factory(make_engine(url))
        return _sessions[url]


def backfill_status(backfill_id: int, settings: Settings | None = None) -> BackfillStatus:
    """The job's stored progress. Raises app.records.errors.RecordNotFoundError for an unknown id."""
    with job_sessions(settings)() as s:
        return get_backfill(s, backfill_id)


def list_jobs(settings: Settings | None = None, *, offset: int = 0, limit: int = 20,
              now: datetime | None = None) -> list[BackfillView]:
    """The newest jobs first, each with its stalled time (BackfillStatus.stalled_for with the settings'
    BACKFILL_STALL_FACTOR and BATCH_TIME_LIMIT_S) as of `now` (default: the current time). Opens only the
    records database."""
    settings = settings or get_settings()
    with records_sessions(settings)() as s:
        return list_backfill_views(s, factor=settings.backfill_stall_factor,
                                   default_batch_s=settings.batch_time_limit_s, now=now, offset=offset, limit=limit)


def run_backfill(path: Path, detach: bool = False, progress_callback: ProgressCallback | None = None, *,
                 batch_size: int = pipeline.DEFAULT_BATCH_SIZE, restart: bool = False, allow_outside: bool = False,
                 settings: Settings | None = None) -> BackfillStatus:
    """Index every note of a notes file (a notes.jsonl, or a folder holding one) as a backfill job.

    Resumes the file's unfinished job if there is one (restart=True: a new job from line 0).
    allow_outside: its notes may name images outside the file's folder (a trusted local run; kept on the
    job, so its later batches and resumes read them too).
    progress_callback(status) is called after every batch (in-process) or every POLL_INTERVAL_S (broker).
    detach: return as soon as the first batch is queued (broker mode; in-process there is nobody else to do
    the work, so the job runs to the end here all the same). Returns the job's status at return.
    Raises FileNotFoundError when there is no notes file at `path`, ServiceUnavailableError when the
    broker cannot be reached (the job is then failed with that reason).
    """
    sessions = job_sessions(settings)
    job, _ = pipeline.start_backfill(sessions, path, batch_size=batch_size, restart=restart,
                                     allow_outside=allow_outside)
    return _run(job, sessions, detach, progress_callback)


def resume_backfill(backfill_id: int, detach: bool = True, progress_callback: ProgressCallback | None = None,
                    settings: Settings | None = None) -> BackfillStatus:
    """Set a paused, failed or stalled job running again and queue its batch at the stored cursor.
    A finished (done) job is returned as it is."""
    sessions = job_sessions(settings)
    with transaction(sessions) as s:
        job = get_backfill(s, backfill_id)
        if job.status == BackfillState.DONE:
            return job
        if job.status != BackfillState.RUNNING:
            job = set_backfill_state(s, backfill_id, BackfillState.RUNNING)
    return _run(job, sessions, detach, progress_callback)


def pause_backfill(backfill_id: int, settings: Settings | None = None) -> BackfillStatus:
    """Pause a running job: the batch in progress commits, the next one is not queued. No-op when finished."""
    with transaction(job_sessions(settings)) as s:
        job = get_backfill(s, backfill_id)
        if job.status != BackfillState.RUNNING:
            return job
        return set_backfill_state(s, backfill_id, BackfillState.PAUSED)


def reindex_library(model_version: str, checkpoint: Path | None = None, detach: bool = False,
                    progress_callback: ProgressCallback | None = None, *,
                    batch_size: int = pipeline.DEFAULT_BATCH_SIZE, allow_outside: bool = False,
                    settings: Settings | None = None) -> BackfillStatus:
    """Re-embed every indexed note with the encoder of `model_version` (from the compact checkpoint folder
    `checkpoint`; default: the workers' configured encoder, which must be that version), beside the active
    vectors; search keeps using the old vectors until the last batch switches the aliases.
    Resumes an unfinished re-index to the same version. allow_outside: notes whose images lie outside their
    source file's folder are re-read too. Returns the job's status at return."""
    sessions = job_sessions(settings)
    ckpt = str(Path(checkpoint).resolve()) if checkpoint else None
    job, _ = pipeline.start_reindex(sessions, model_version, checkpoint=ckpt, batch_size=batch_size,
                                    allow_outside=allow_outside)
    return _run(job, sessions, detach, progress_callback)


def _enqueue(job: BackfillStatus, sessions: sessionmaker[Session]) -> None:
    """Queue the job's batch at its cursor; an unreachable broker fails the job rather than leaving it running."""
    try:
        if job.kind == BackfillKind.BACKFILL:
            backfill_task.apply_async((job.source, job.cursor, job.id))
        else:
            reindex_library_task.apply_async((job.model_version, job.checkpoint, job.id, job.cursor))
    except Exception as exc:
        failure = service_failure(exc, app.conf.uninote_settings)
        if failure is None:
            raise
        broker = ServiceUnavailableError("broker", mask_url(app.conf.broker_url), failure.reason)
        pipeline.fail_job(sessions, job.id, f"could not queue the batch at cursor {job.cursor}: {broker}")
        raise broker from exc


def _run(job: BackfillStatus, sessions: sessionmaker[Session], detach: bool,
         progress_callback: ProgressCallback | None) -> BackfillStatus:
    if is_eager(app):
        return _run_here(job, sessions, progress_callback)
    _enqueue(job, sessions)
    if detach:
        return job
    return follow(job.id, sessions, progress_callback)


def _run_here(job: BackfillStatus, sessions: sessionmaker[Session],
              progress_callback: ProgressCallback | None) -> BackfillStatus:
    """In-process mode: the same batch functions the tasks call, one after another, reporting each batch."""
    library = runtime.get_library()
    cursor, tries = job.cursor, 0
    while True:
        try:
            if job.kind == BackfillKind.BACKFILL:
                outcome = pipeline.run_backfill_batch(library, job.id, cursor)
            else:
                outcome = pipeline.run_reindex_batch(library, encoder_for(library, job.checkpoint), job.id, cursor)
        except Exception as exc:
            if is_transient(exc) and tries < MAX_RETRIES:  # the same policy as the tasks' retries
                time.sleep(backoff_s(tries))
                tries += 1
                continue
            pipeline.fail_job(sessions, job.id, describe(exc))
            raise
        tries = 0
        if progress_callback is not None:
            progress_callback(outcome.job)
        if outcome.next_cursor is None:
            with sessions() as s:
                return get_backfill(s, job.id)
        cursor = outcome.next_cursor


def follow(backfill_id: int, sessions: sessionmaker[Session] | None = None,
           progress_callback: ProgressCallback | None = None, *, poll_s: float = POLL_INTERVAL_S,
           timeout_s: float | None = None) -> BackfillStatus:
    """Read the job's row every `poll_s` until it is done, failed or paused (or timeout_s passes); report each
    change to progress_callback. Returns the last status read."""
    sessions = sessions or job_sessions()
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    last = None
    while True:
        with sessions() as s:
            job = get_backfill(s, backfill_id)
        key = (job.status, job.cursor, job.done, job.failed)
        if key != last and progress_callback is not None:
            progress_callback(job)
        last = key
        if job.status != BackfillState.RUNNING or (deadline is not None and time.monotonic() > deadline):
            return job
        time.sleep(poll_s)
