"""The plain functions the Celery tasks wrap: each takes a Library (and ids), re-reads what it needs, and is
idempotent, so a task delivered twice (acks_late after a crash) does no harm.

- `index_note_ids`: notes by id -> their source file (registry `source`) -> Library.index.
- `delete_note`: vectors and registry row; a note that is already gone is fine.
- `run_backfill_batch`: one batch of a notes file from the job's cursor; counts and cursor commit together.
- `run_reindex_batch`: re-embed the next notes with a new encoder beside the old vectors; at the end,
  switch the `notes`/`elements` aliases (search keeps using the old vectors until then).
- `lookback`: the paper's offline look-back mode: a note flagged as a risk is matched against the whole
  library and the report (its ranked hits) is saved for review.
The embed -> upsert -> record steps themselves are Library.index (app/library.py); nothing here writes
vectors or registry rows another way.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from app.audit import AuditReport
from app.library import IndexResult, Library
from app.notes import Note
from app.records import registry
from app.records.backfills import (
    BackfillError,
    BackfillKind,
    BackfillState,
    BackfillStatus,
    advance_backfill,
    count_notes_to_reindex,
    create_backfill,
    get_backfill,
    latest_backfill,
    notes_to_reindex,
    set_backfill_state,
    touch_backfill,
)
from app.records.db import transaction
from app.records.errors import RecordNotFoundError
from app.records.models import utcnow
from app.records.types import NoteStatus
from encoder.types import Encoder
from workers.note_source import count_lines, find_notes, read_batch, resolve_source, source_label

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 32  # notes (lines) per backfill batch: one encoder batch, a few seconds on CPU
STALE_AFTER_S = 600.0  # a running job untouched this long has lost its chain of tasks (worker crash)
REINDEX_SOURCE = "library"  # `source` of re-index jobs


class NoteNotFoundError(LookupError):
    """A note id whose content cannot be found (no registry row, no source, or not in its source)."""


class JobError(RuntimeError):
    """A backfill / re-index job cannot go on (wrong kind, source gone, encoder of the wrong version)."""


@dataclass(frozen=True)
class BatchOutcome:
    """What one batch call did. next_cursor: where the next batch starts, None = queue nothing more (the job
    is finished or paused, or this delivery was a duplicate that another one already committed)."""

    job: BackfillStatus
    committed: bool
    next_cursor: int | None


# ---- notes by id -----------------------------------------------------------------------------------------
def load_notes_by_id(library: Library, note_ids: list[str], *,
                     allow_outside: bool = False) -> tuple[dict[str, list[Note]], dict[str, str]]:
    """Find each note's content through its registry row's `source`. Returns (source -> notes found there,
    note id -> why it was not found). Deleted notes count as not found (a deletion wins over an index
    request that was queued before it); so do notes naming images outside their file's folder, unless
    allow_outside."""
    by_source: dict[str, list[str]] = defaultdict(list)
    missing: dict[str, str] = {}
    with library.sessions() as s:
        for note_id in dict.fromkeys(note_ids):
            rec = registry.get_note_record(s, note_id)
            if rec is None:
                missing[note_id] = f"note {note_id!r} is not in the registry: submit it with its notes file first"
            elif rec.status == NoteStatus.DELETED:
                missing[note_id] = f"note {note_id!r} was deleted"
            elif not rec.source:
                missing[note_id] = f"note {note_id!r} has no source recorded: its content cannot be re-read"
            else:
                by_source[rec.source].append(note_id)
    found: dict[str, list[Note]] = {}
    for source, ids in by_source.items():
        try:
            notes, gone = find_notes(source, ids, allow_outside=allow_outside)
        except FileNotFoundError as e:
            missing |= {i: f"note {i!r}: {e}" for i in ids}
            continue
        found[source] = [notes[i] for i in ids if i in notes]
        missing |= gone
    return found, missing


def record_failures(library: Library, reasons: dict[str, str]) -> None:
    """Mark notes failed with their reason (registry last_error); notes without a row or deleted are left."""
    with transaction(library.sessions) as s:
        for note_id, reason in reasons.items():
            rec = registry.get_note_record(s, note_id)
            if rec is not None and rec.status != NoteStatus.DELETED:
                registry.mark_failed(s, note_id, reason)


def index_note_ids(library: Library, note_ids: list[str], *, force: bool = False,
                   allow_outside: bool = False) -> IndexResult:
    """Index the notes with these ids (read from their registry `source`). Notes that cannot be found or
    encoded are recorded as failed with the reason and the rest go on; deleted notes are skipped.
    allow_outside: images outside a source file's folder are read. Unreachable services (store, encoder,
    database) raise: the caller retries the whole call."""
    found, missing = load_notes_by_id(library, note_ids, allow_outside=allow_outside)
    result = IndexResult()
    for source, notes in found.items():
        result.merge(library.index(notes, source=source, force=force))
    deleted = {i for i, why in missing.items() if why.endswith("was deleted")}
    result.skipped += sorted(deleted)
    failures = {i: why for i, why in missing.items() if i not in deleted}
    record_failures(library, failures)
    result.failed |= failures
    return result


def delete_note(library: Library, note_id: str) -> bool:
    """Remove the note's vectors and tombstone its registry row. Returns False when the registry never knew
    the note (its vectors, if any, are removed all the same). Idempotent."""
    try:
        library.delete(note_id)
        return True
    except RecordNotFoundError:
        return False


def lookback(library: Library, note_id: str, *, limit: int = 10) -> AuditReport:
    """Match a stored (flagged) note against the whole library and save the report for review (the paper's
    offline look-back mode). The note itself is left out of its own hits (app.audit.check). Returns the report
    with report_id set. A stored note is checked from its stored vectors (no re-encoding); one not in the
    vector store is read from its registry source and encoded. Raises NoteNotFoundError when the note's
    content cannot be found."""
    try:
        return library.check_stored(note_id, limit=limit, save=True)
    except KeyError:
        pass
    found, missing = load_notes_by_id(library, [note_id])
    if note_id in missing:
        raise NoteNotFoundError(missing[note_id])
    (note,) = [n for notes in found.values() for n in notes]
    return library.check(note, limit=limit, save=True)


# ---- backfills -------------------------------------------------------------------------------------------
def start_backfill(library_or_sessions, path: Path | str, *, batch_size: int = DEFAULT_BATCH_SIZE,
                   restart: bool = False, allow_outside: bool | None = None) -> tuple[BackfillStatus, bool]:
    """The job for this notes file: the unfinished one if there is one (resumed: state set to running, its
    allow_outside set to this call's unless None), else a new one at line 0. restart: always a new job.
    Returns (job, created). Raises FileNotFoundError."""
    sessions = getattr(library_or_sessions, "sessions", library_or_sessions)
    jsonl = resolve_source(path)
    source = source_label(jsonl)
    with transaction(sessions) as s:
        job = None if restart else latest_backfill(s, BackfillKind.BACKFILL, source)
        if job is not None and job.status != BackfillState.DONE:
            return _resumed(s, job, allow_outside), False
        return create_backfill(s, kind=BackfillKind.BACKFILL, source=source, batch_size=batch_size,
                               total=count_lines(jsonl), allow_outside=bool(allow_outside)), True


def _resumed(session, job: BackfillStatus, allow_outside: bool | None) -> BackfillStatus:
    """An unfinished job set running again, with allow_outside replaced unless None."""
    if job.status == BackfillState.RUNNING and allow_outside in (None, job.allow_outside):
        return job
    return set_backfill_state(session, job.id, BackfillState.RUNNING, allow_outside=allow_outside)


def _check_delivery(sessions, backfill_id: int, cursor: int, kind: BackfillKind) -> BatchOutcome | BackfillStatus:
    """The job if this delivery should run its batch, else the outcome to return at once."""
    with transaction(sessions) as s:
        job = get_backfill(s, backfill_id)
        if job.kind != kind:
            raise JobError(f"job {backfill_id} is a {job.kind}, not a {kind}")
        if job.status != BackfillState.RUNNING:
            return BatchOutcome(job, False, None)
        if cursor != job.cursor:
            # A batch already committed (duplicate delivery), or a cursor from the future. If the job's chain
            # of tasks died (no heartbeat for STALE_AFTER_S), this delivery carries it on from the job's cursor.
            stale = utcnow() - job.updated_at > timedelta(seconds=STALE_AFTER_S)
            return BatchOutcome(job, False, job.cursor if (stale and cursor < job.cursor) else None)
        touch_backfill(s, backfill_id)
    return job


def run_backfill_batch(library: Library, backfill_id: int, cursor: int) -> BatchOutcome:
    """Index lines [cursor, cursor + batch_size) of the job's notes file and commit the batch.

    Bad records and notes that fail to index are counted as failed (the first ones kept in the job's
    `errors`, each note's reason on its registry row) and the batch goes on. Unreachable services raise
    (retry the same call). Raises JobError for a job of another kind, FileNotFoundError when the file is gone.
    """
    checked = _check_delivery(library.sessions, backfill_id, cursor, BackfillKind.BACKFILL)
    if isinstance(checked, BatchOutcome):
        return checked
    job = checked
    t0 = time.perf_counter()
    batch = read_batch(Path(job.source), job.cursor, job.cursor_bytes, job.batch_size,
                       allow_outside=job.allow_outside)
    result = library.index([n for _, n in batch.notes], source=job.source)
    elapsed = time.perf_counter() - t0
    line_of = {n.note_id: line for line, n in batch.notes}
    errors = [BackfillError(b.line, b.note_id, b.error) for b in batch.bad]
    errors += [BackfillError(line_of.get(i), i, why) for i, why in result.failed.items()]
    with transaction(library.sessions) as s:
        committed = advance_backfill(
            s, backfill_id, from_cursor=cursor, to_cursor=batch.next_cursor, to_cursor_bytes=batch.next_cursor_bytes,
            done=len(result.indexed) + len(result.skipped), skipped=len(result.skipped),
            failed=len(batch.bad) + len(result.failed), elapsed_s=elapsed, errors=errors, finished=batch.at_end,
        )
        job = get_backfill(s, backfill_id)
    if not committed:
        log.info("backfill %s: batch at line %s was already committed by another delivery", backfill_id, cursor)
    return BatchOutcome(job, committed, batch.next_cursor if committed and not batch.at_end else None)


def fail_job(sessions, backfill_id: int, reason: str) -> BackfillStatus | None:
    """Stop a job on a permanent error, keeping the reason (resume tries again from its cursor)."""
    try:
        with transaction(sessions) as s:
            return set_backfill_state(s, backfill_id, BackfillState.FAILED, reason)
    except Exception:  # the database may be what failed: the task's own failure is logged by Celery
        log.exception("could not record the failure of job %s: %s", backfill_id, reason)
        return None


# ---- re-index --------------------------------------------------------------------------------------------
def start_reindex(sessions, model_version: str, *, checkpoint: str | None = None,
                  batch_size: int = DEFAULT_BATCH_SIZE, allow_outside: bool | None = None) -> tuple[BackfillStatus, bool]:
    """The re-index job to `model_version`: the unfinished one if any (resumed), else a new one whose total is
    the number of indexed notes not yet embedded by that version. allow_outside: notes whose images lie
    outside their source file's folder are re-read too (None: a resumed job keeps its flag). Returns (job, created)."""
    with transaction(sessions) as s:
        job = latest_backfill(s, BackfillKind.REINDEX, REINDEX_SOURCE, model_version=model_version)
        if job is not None and job.status != BackfillState.DONE:
            return _resumed(s, job, allow_outside), False
        return create_backfill(s, kind=BackfillKind.REINDEX, source=REINDEX_SOURCE, batch_size=batch_size,
                               total=count_notes_to_reindex(s, model_version), model_version=model_version,
                               checkpoint=checkpoint, allow_outside=bool(allow_outside)), True


_reindex_libraries: dict[tuple[int, str], Library] = {}
_reindex_lock = threading.Lock()


def reindex_library(library: Library, encoder: Encoder) -> Library:
    """A Library writing with `encoder` over `library`'s store and records (one per process and encoder).
    Creating it creates the new version's collections beside the active ones; the aliases do not move."""
    key = (id(library), encoder.model_version)
    with _reindex_lock:
        lib = _reindex_libraries.get(key)
        if lib is None:
            lib = _reindex_libraries[key] = Library(library.settings, encoder, library.store, library.sessions)
        return lib


def run_reindex_batch(library: Library, encoder: Encoder, backfill_id: int, cursor: int) -> BatchOutcome:
    """Re-embed the next `batch_size` indexed notes that `encoder` has not embedded yet, into the collections
    of encoder.model_version; when none is left, switch the aliases to it and finish the job.

    Notes whose content cannot be re-read (no source, file gone) are marked failed with the reason.
    Raises JobError when the encoder is not the job's model_version or a batch makes no progress.
    """
    checked = _check_delivery(library.sessions, backfill_id, cursor, BackfillKind.REINDEX)
    if isinstance(checked, BatchOutcome):
        return checked
    job = checked
    if encoder.model_version != job.model_version:
        raise JobError(f"re-index job {backfill_id} targets model version {job.model_version!r} but this worker's "
                       f"encoder is {encoder.model_version!r}: give the job the checkpoint of that version")
    t0 = time.perf_counter()
    with library.sessions() as s:
        todo = notes_to_reindex(s, job.model_version, job.batch_size)
    if not todo:
        library.store.switch_alias(job.model_version)
        with transaction(library.sessions) as s:
            committed = advance_backfill(s, backfill_id, from_cursor=cursor, to_cursor=cursor + 1,
                                         elapsed_s=time.perf_counter() - t0, finished=True)
            job = get_backfill(s, backfill_id)
        return BatchOutcome(job, committed, None)
    new_lib = reindex_library(library, encoder)
    found, missing = load_notes_by_id(library, [note_id for note_id, _ in todo], allow_outside=job.allow_outside)
    result = IndexResult()
    for source, notes in found.items():
        result.merge(new_lib.index(notes, source=source))
    record_failures(library, missing)
    failed = result.failed | missing
    if not (result.indexed or result.skipped or failed):
        raise JobError(f"re-index job {backfill_id} made no progress on {len(todo)} notes")
    errors = [BackfillError(None, i, why) for i, why in failed.items()]
    with transaction(library.sessions) as s:
        committed = advance_backfill(
            s, backfill_id, from_cursor=cursor, to_cursor=cursor + 1, done=len(result.indexed) + len(result.skipped),
            skipped=len(result.skipped), failed=len(failed), elapsed_s=time.perf_counter() - t0, errors=errors,
        )
        job = get_backfill(s, backfill_id)
    return BatchOutcome(job, committed, cursor + 1 if committed else None)
