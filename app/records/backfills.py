"""Backfill progress: one row per batch job (a notes file backfill, or a library re-index), so a job can be
watched, paused, resumed and restarted after a crash without redoing finished batches.

A *backfill* walks one notes file (`source`: the absolute path of a notes.jsonl, or of the folder that
holds it) in batches of `batch_size` lines; `cursor` is the number of lines already consumed and
`cursor_bytes` the byte offset where line `cursor` starts, so a resumed job seeks straight there.
A *reindex* re-embeds every indexed note whose model_version is not `model_version`; `cursor` counts
the batches committed (the set of notes still to do shrinks as they are re-embedded).

Exactly-once bookkeeping: a batch's counts are added by `advance_backfill` in the same UPDATE that
moves the cursor, guarded by `WHERE cursor = <the batch's cursor> AND status = 'running'`; a second
delivery of the same batch (a worker crash, a duplicate message) loses that race and adds nothing.

A job whose chain of tasks died with every worker (SIGKILL, a lost machine) still reads `running`:
`BackfillStatus.stalled_for(now, factor)` says so once its heartbeat (`updated_at`) is older than `factor`
batch times (its mean committed batch, or the batch time limit before the first batch), and a resume
(workers.backfill.resume_backfill) queues its batch at the stored cursor again.

Plain functions over a Session (the caller owns the transaction: app.records.db.transaction); they return
`BackfillStatus` dataclasses, never ORM rows (HMA style). The table is created by Alembic revision 0002;
`allow_outside` by 0005.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, Float, Index, Integer, BigInteger, String, Text, false, func, or_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.records.errors import RecordNotFoundError
from app.records.models import PortableJSON, Base, NoteRow, UTCDateTime, utcnow
from app.records.paging import check_page

MAX_KEPT_ERRORS = 100  # per job: the first errors are kept in `errors` (the counts keep counting)


class BackfillKind(StrEnum):
    BACKFILL = "backfill"  # index the notes of one notes file
    REINDEX = "reindex"  # re-embed the whole library with a new encoder checkpoint


class BackfillState(StrEnum):
    RUNNING = "running"  # batches are being processed (or queued)
    PAUSED = "paused"  # the next batch stops without re-queueing; resume re-queues from `cursor`
    DONE = "done"  # every batch is committed
    FAILED = "failed"  # stopped on a permanent error (`last_error`); resume tries again from `cursor`


BACKFILL_KINDS = tuple(k.value for k in BackfillKind)
BACKFILL_STATES = tuple(s.value for s in BackfillState)


class BackfillRow(Base):
    """One backfill or re-index job and its progress."""

    __tablename__ = "backfills"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(Text)  # notes file path (backfill) or "library" (reindex)
    model_version: Mapped[str | None] = mapped_column(String(200))  # reindex: the target weights
    checkpoint: Mapped[str | None] = mapped_column(Text)  # reindex: where the target weights are
    status: Mapped[str] = mapped_column(String(16), default=BackfillState.RUNNING.value)
    cursor: Mapped[int] = mapped_column(Integer, default=0)  # lines consumed (backfill) / batches (reindex)
    cursor_bytes: Mapped[int] = mapped_column(BigInteger, default=0)  # byte offset of line `cursor`
    total: Mapped[int | None] = mapped_column(Integer)  # lines in the file / notes to re-embed at start
    batch_size: Mapped[int] = mapped_column(Integer)
    done: Mapped[int] = mapped_column(Integer, default=0)  # notes indexed now or already current
    skipped: Mapped[int] = mapped_column(Integer, default=0)  # of `done`: already current, not re-encoded
    failed: Mapped[int] = mapped_column(Integer, default=0)  # bad records + notes that could not be indexed
    elapsed_s: Mapped[float] = mapped_column(Float, default=0.0)  # processing seconds of committed batches
    rate: Mapped[float | None] = mapped_column(Float)  # (done + failed) / elapsed_s, notes per second
    errors: Mapped[list[Any]] = mapped_column(PortableJSON, default=list)  # first MAX_KEPT_ERRORS failures
    # backfill: image paths outside the notes file's folder are read (`--allow-outside`, a trusted local run)
    allow_outside: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    last_error: Mapped[str | None] = mapped_column(Text)  # why the job failed (status failed)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)  # heartbeat of the job
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint(f"kind IN {BACKFILL_KINDS!r}", name="kind"),
        CheckConstraint(f"status IN {BACKFILL_STATES!r}", name="status"),
        Index("ix_backfills_kind_source", "kind", "source"),
        Index("ix_backfills_status", "status"),
    )


@dataclass(frozen=True)
class BackfillError:
    """One failure inside a job: the line of the notes file (backfill; None for reindex), the note, why."""

    line: int | None
    note_id: str | None
    error: str

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "note_id": self.note_id, "error": self.error}


@dataclass(frozen=True)
class BackfillStatus:
    """A job's progress as stored. Timestamps are timezone-aware UTC; rate is notes per second."""

    id: int
    kind: BackfillKind
    source: str
    model_version: str | None
    checkpoint: str | None
    status: BackfillState
    cursor: int
    cursor_bytes: int
    total: int | None
    batch_size: int
    done: int
    skipped: int
    failed: int
    elapsed_s: float
    rate: float | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    errors: list[BackfillError] = field(default_factory=list)
    allow_outside: bool = False

    @property
    def batches(self) -> int:
        """Batches committed so far (a backfill's cursor counts lines, a re-index's counts batches)."""
        if self.kind == BackfillKind.REINDEX:
            return self.cursor
        return -(-self.cursor // self.batch_size)

    def batch_seconds(self, default_s: float) -> float:
        """Mean processing seconds of the committed batches; `default_s` before the first one."""
        return self.elapsed_s / self.batches if self.batches and self.elapsed_s > 0 else default_s

    def stalled_for(self, now: datetime, factor: float, default_batch_s: float) -> float | None:
        """Seconds without a heartbeat when a running job has made no progress for more than `factor` batch
        times (batch_seconds(default_batch_s)), else None (not running, or still within that time).
        `now` is timezone-aware UTC."""
        if self.status != BackfillState.RUNNING:
            return None
        quiet = (now - self.updated_at).total_seconds()
        return quiet if quiet > factor * self.batch_seconds(default_batch_s) else None

    @property
    def finished(self) -> bool:
        """True when no more batches will run without an operator (done or failed)."""
        return self.status in (BackfillState.DONE, BackfillState.FAILED)

    @property
    def processed(self) -> int:
        return self.done + self.failed

    def describe(self) -> str:
        """One line for logs and the CLI: 'backfill 3 running: 120/400 lines, done 118, failed 2, 35.1 notes/s'."""
        unit = "lines" if self.kind == BackfillKind.BACKFILL else "notes"
        where = f"{self.cursor}/{self.total} {unit}" if self.kind == BackfillKind.BACKFILL else f"{self.processed}/{self.total} {unit}"
        rate = f", {self.rate:.1f} notes/s" if self.rate else ""
        why = f" ({self.last_error})" if self.last_error else ""
        return f"{self.kind} {self.id} {self.status}: {where}, done {self.done}, failed {self.failed}{rate}{why}"


@dataclass(frozen=True)
class BackfillView:
    """A job as `uninote backfill --status` and the dashboard show it: its status and, when it is stalled,
    for how long (seconds without progress) and the batch time that was exceeded `factor` times."""

    job: BackfillStatus
    stalled_s: float | None = None
    batch_s: float | None = None

    def describe(self) -> str:
        """job.describe(), plus 'STALLED: ...; resume with `uninote backfill --resume ID`' when stalled."""
        line = self.job.describe()
        if self.stalled_s is None:
            return line
        return (f"{line} STALLED: no progress for {self.stalled_s:.0f} s (batches take {self.batch_s:.1f} s); "
                f"resume with `uninote backfill --resume {self.job.id}`")


def list_backfill_views(session: Session, *, factor: float, default_batch_s: float, now: datetime | None = None,
                        offset: int = 0, limit: int = 20) -> list[BackfillView]:
    """One page of jobs, newest first, each with its stall (BackfillStatus.stalled_for) as of `now`
    (timezone-aware UTC; default: now)."""
    now = now or utcnow()
    views = []
    for job in list_backfills(session, offset=offset, limit=limit):
        stalled = job.stalled_for(now, factor, default_batch_s)
        views.append(BackfillView(job, stalled, job.batch_seconds(default_batch_s) if stalled is not None else None))
    return views


def create_backfill(
    session: Session,
    *,
    kind: BackfillKind | str,
    source: str,
    batch_size: int,
    total: int | None = None,
    model_version: str | None = None,
    checkpoint: str | None = None,
    allow_outside: bool = False,
) -> BackfillStatus:
    """A new job in state running at cursor 0. allow_outside: its notes may name images outside their
    file's folder. Raises ValueError for an unknown kind, an empty source, batch_size < 1, a negative
    total, or a reindex without model_version."""
    kind = _kind(kind)
    if not source:
        raise ValueError("source must name the notes file (backfill) or 'library' (reindex)")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if total is not None and total < 0:
        raise ValueError(f"total must be >= 0, got {total}")
    if kind == BackfillKind.REINDEX and not model_version:
        raise ValueError("a reindex needs the target model_version")
    now = utcnow()
    row = BackfillRow(kind=kind.value, source=source, batch_size=batch_size, total=total, model_version=model_version,
                      checkpoint=checkpoint, status=BackfillState.RUNNING.value, cursor=0, cursor_bytes=0, done=0,
                      skipped=0, failed=0, elapsed_s=0.0, errors=[], created_at=now, updated_at=now,
                      allow_outside=bool(allow_outside))
    session.add(row)
    session.flush()
    return _to_status(row)


def get_backfill(session: Session, backfill_id: int) -> BackfillStatus:
    """The job's status. Raises RecordNotFoundError('backfill', id) for an unknown id."""
    return _to_status(_row(session, backfill_id))


def latest_backfill(session: Session, kind: BackfillKind | str, source: str,
                    model_version: str | None = None) -> BackfillStatus | None:
    """The newest job of this kind on this source (and target model_version, if given), or None."""
    query = select(BackfillRow).where(BackfillRow.kind == _kind(kind).value, BackfillRow.source == source)
    if model_version is not None:
        query = query.where(BackfillRow.model_version == model_version)
    row = session.scalars(query.order_by(BackfillRow.id.desc()).limit(1)).first()
    return None if row is None else _to_status(row)


def list_backfills(session: Session, status: BackfillState | str | None = None, offset: int = 0,
                   limit: int = 100) -> list[BackfillStatus]:
    """One page of jobs, newest first, optionally only those with `status`."""
    check_page(offset, limit)
    query = select(BackfillRow).order_by(BackfillRow.id.desc()).offset(offset).limit(limit)
    if status is not None:
        query = query.where(BackfillRow.status == _state(status).value)
    return [_to_status(r) for r in session.scalars(query)]


def advance_backfill(
    session: Session,
    backfill_id: int,
    *,
    from_cursor: int,
    to_cursor: int,
    to_cursor_bytes: int = 0,
    done: int = 0,
    skipped: int = 0,
    failed: int = 0,
    elapsed_s: float = 0.0,
    errors: list[BackfillError] | None = None,
    finished: bool = False,
) -> bool:
    """Commit one batch: move the cursor from `from_cursor` to `to_cursor` and add the batch's counts, in
    one UPDATE guarded by `cursor = from_cursor AND status = 'running'`. finished: also mark the job done.

    Returns False (and changes nothing) when the guard fails: the batch was already committed by another
    delivery, or the job was paused/finished meanwhile. Raises ValueError for negative counts or a
    cursor that moves backwards.
    """
    if to_cursor < from_cursor or min(done, skipped, failed) < 0 or elapsed_s < 0:
        raise ValueError(f"bad batch: cursor {from_cursor}->{to_cursor}, done {done}, skipped {skipped}, "
                         f"failed {failed}, elapsed {elapsed_s}")
    row = _row(session, backfill_id)
    if row.cursor != from_cursor or row.status != BackfillState.RUNNING:
        return False
    now = utcnow()
    new_elapsed = row.elapsed_s + elapsed_s
    new_processed = row.done + row.failed + done + failed
    values: dict[str, Any] = {
        "cursor": to_cursor,
        "cursor_bytes": to_cursor_bytes,
        "done": BackfillRow.done + done,
        "skipped": BackfillRow.skipped + skipped,
        "failed": BackfillRow.failed + failed,
        "elapsed_s": BackfillRow.elapsed_s + elapsed_s,
        "rate": (new_processed / new_elapsed) if new_elapsed > 0 else None,
        "updated_at": now,
    }
    kept = list(row.errors or [])
    if errors and len(kept) < MAX_KEPT_ERRORS:
        values["errors"] = kept + [e.to_dict() for e in errors[: MAX_KEPT_ERRORS - len(kept)]]
    if finished:
        values |= {"status": BackfillState.DONE.value, "finished_at": now}
    result = session.execute(
        update(BackfillRow)
        .where(BackfillRow.id == backfill_id, BackfillRow.cursor == from_cursor,
               BackfillRow.status == BackfillState.RUNNING.value)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    session.expire_all()
    return result.rowcount == 1


def set_backfill_state(session: Session, backfill_id: int, status: BackfillState | str,
                       last_error: str | None = None, *, allow_outside: bool | None = None) -> BackfillStatus:
    """Set the job's state: paused (stops after the current batch), running (resume; clears last_error),
    failed (with the reason), done; allow_outside, when given, replaces the job's flag. Raises
    RecordNotFoundError, ValueError for an unknown state or a failed state without a reason."""
    state = _state(status)
    if state == BackfillState.FAILED and not (last_error and last_error.strip()):
        raise ValueError("a failed job needs last_error saying why")
    row = _row(session, backfill_id)
    now = utcnow()
    row.status = state.value
    row.updated_at = now
    row.last_error = last_error if state == BackfillState.FAILED else None
    row.finished_at = now if state in (BackfillState.DONE, BackfillState.FAILED) else None
    if allow_outside is not None:
        row.allow_outside = allow_outside
    session.flush()
    return _to_status(row)


def touch_backfill(session: Session, backfill_id: int) -> None:
    """Heartbeat: set updated_at to now (a worker is working on the job)."""
    session.execute(update(BackfillRow).where(BackfillRow.id == backfill_id).values(updated_at=utcnow())
                    .execution_options(synchronize_session=False))


# ---- the re-index work list, over the registry --------------------------------------------------------
def _needs_reindex(model_version: str):
    return (NoteRow.status == "indexed") & or_(NoteRow.model_version.is_(None), NoteRow.model_version != model_version)


def notes_to_reindex(session: Session, model_version: str, limit: int) -> list[tuple[str, str | None]]:
    """The first `limit` indexed notes (by note_id) not yet embedded by `model_version`: [(note_id, source)].
    The list shrinks as notes are re-embedded (registry model_version = the new one) or marked failed."""
    check_page(0, limit)
    rows = session.execute(
        select(NoteRow.note_id, NoteRow.source).where(_needs_reindex(model_version)).order_by(NoteRow.note_id).limit(limit)
    )
    return [(note_id, source) for note_id, source in rows]


def count_notes_to_reindex(session: Session, model_version: str) -> int:
    """How many indexed notes are not yet embedded by `model_version`."""
    return session.scalar(select(func.count()).select_from(NoteRow).where(_needs_reindex(model_version))) or 0


def _kind(kind: BackfillKind | str) -> BackfillKind:
    try:
        return BackfillKind(kind)
    except ValueError:
        raise ValueError(f"unknown job kind {kind!r}: expected one of {list(BACKFILL_KINDS)}") from None


def _state(status: BackfillState | str) -> BackfillState:
    try:
        return BackfillState(status)
    except ValueError:
        raise ValueError(f"unknown job status {status!r}: expected one of {list(BACKFILL_STATES)}") from None


def _row(session: Session, backfill_id: int) -> BackfillRow:
    row = session.get(BackfillRow, backfill_id, populate_existing=True)
    if row is None:
        raise RecordNotFoundError("backfill", backfill_id)
    return row


def _to_status(row: BackfillRow) -> BackfillStatus:
    return BackfillStatus(
        id=row.id,
        kind=BackfillKind(row.kind),
        source=row.source,
        model_version=row.model_version,
        checkpoint=row.checkpoint,
        status=BackfillState(row.status),
        cursor=row.cursor,
        cursor_bytes=row.cursor_bytes,
        total=row.total,
        batch_size=row.batch_size,
        done=row.done,
        skipped=row.skipped,
        failed=row.failed,
        elapsed_s=row.elapsed_s,
        rate=row.rate,
        last_error=row.last_error,
        created_at=row.created_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
        errors=[BackfillError(e.get("line"), e.get("note_id"), e.get("error", "")) for e in (row.errors or [])],
        allow_outside=bool(row.allow_outside),
    )
