"""UniNoteClient: the Python client other services call for duplicate checks (and the dashboard calls too).

    from app.client import UniNoteClient
    with UniNoteClient.open() as client:                # settings from the environment
        client.index(notes)                              # -> IndexResult
        report = client.check(note)                      # -> AuditReport (matches, evidence, verdict)
        client.record_decision(match_id, "duplicate", moderator="alice")

Where it runs is a matter of settings, not of code: with none set it is the embedded default (local
Qdrant folder, SQLite, in-process compact encoder; one process per HOME); with QDRANT_URL, DATABASE_URL
and ENCODER_URL it talks to the deployed Qdrant server, PostgreSQL and vLLM encoder server. Either way it
is the same `app.library.Library` underneath (Library.open(settings)).

Every method returns dataclasses (AuditReport, IndexResult, MatchRecord, DecisionRecord, ...). One client
may be shared by threads (the dashboard's handlers): each resource that is not thread-safe has its own lock,
held only while it is used. The encoder runs one batch at a time (it uses every core anyway), the vector
store serves one call at a time (Qdrant's local mode is not thread-safe), and the records database needs
none (a session per call, SQLAlchemy's pool). So reads of the records and decisions never wait for an
encoding, and a check waits for the encoder only while it encodes.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from app import moderation, stored_notes
from app.audit import AuditReport
from app.library import IndexResult, Library
from app.notes import Note, describe_validation_error
from app.records import audit_log, reports
from app.records.audit_log import Action, AuditEntry
from app.records.backfills import BackfillView, list_backfill_views
from app.records.errors import RecordNotFoundError
from app.records.types import Decision, DecisionRecord, MatchRecord, NoteStatus, ReportRecord, ReportSummary
from app.settings import Settings, get_settings
from app.stored_notes import NoteDetails, NotePage
from app.threshold_report import DEFAULT_GRID, ThresholdReport, threshold_report
from encoder.types import Encoder

if TYPE_CHECKING:
    from app.banks import Banks
    from app.remote_client import RemoteClient

NoteLike = Note | Mapping[str, Any]  # a Note, or a dict in the notes.jsonl record format


class Serialized:
    """`target` with each method call made under `lock` (attributes that are not methods are read as they
    are). Wraps the Library's encoder and store so that every caller of that Library shares the locks."""

    def __init__(self, target: Any, lock: threading.Lock | threading.RLock):
        self._target, self._lock = target, lock

    @property
    def lock(self) -> threading.Lock | threading.RLock:
        """The lock every call takes (hold it, re-entrantly for the store, around a sequence of calls)."""
        return self._lock

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not callable(value):
            return value
        lock = self._lock

        def locked(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return value(*args, **kwargs)

        return locked


class UniNoteClient:
    """Index, check and moderate notes over one Library. See the module docstring."""

    def __init__(self, library: Library):
        self.library = library
        if not isinstance(library.encoder, Serialized):
            library.encoder = Serialized(library.encoder, threading.Lock())
        if not isinstance(library.store, Serialized):
            library.store = Serialized(library.store, threading.RLock())
        self._close_lock = threading.Lock()

    @classmethod
    def open(cls, settings: Settings | None = None, encoder: Encoder | None = None) -> "UniNoteClient":
        """Open the library the settings describe (default: the environment's; runs pending migrations).

        Raises app.store.StoreLockedError when another process holds the embedded Qdrant folder,
        app.records.DatabaseUnreachableError when the database cannot be reached.
        """
        return cls(Library.open(settings or get_settings(), encoder=encoder))

    @classmethod
    def connect(cls, url: str, api_key: str, **options: Any) -> "RemoteClient":
        """The same client over HTTP, against `uninote serve` at `url` (app/remote_client.py): the same methods
        and typed results. options: timeout_s, retries, backoff_s. Raises nothing until the first call."""
        from app.remote_client import RemoteClient

        return RemoteClient(url, api_key, **options)

    @cached_property
    def banks(self) -> "Banks":
        """Banks (risk libraries, allow-lists) of this library: app.banks.Banks over this client."""
        from app.banks import Banks

        return Banks(self, lock=self.library.store.lock)

    @property
    def settings(self) -> Settings:
        return self.library.settings

    def close(self) -> None:
        with self._close_lock:
            self.library.close()

    def __enter__(self) -> "UniNoteClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- notes --------------------------------------------------------------------------------------
    def index(self, notes: Iterable[NoteLike], *, source: str | None = None, force: bool = False) -> IndexResult:
        """Index notes (unchanged ones are skipped unless force). Bad notes are reported in
        IndexResult.failed and the rest go on; a note id is never both indexed and failed. Raises
        ValueError naming a record that is not a valid Note, or an id that appears twice in the batch
        (nothing is indexed then)."""
        batch = [as_note(n) for n in notes]
        repeated = sorted(i for i, n in Counter(n.note_id for n in batch).items() if n > 1)
        if repeated:
            raise ValueError(f"note_id: {', '.join(map(repr, repeated))} appear(s) more than once in this batch: "
                             "send each note once")
        return self.library.index(batch, source=source, force=force)

    def delete(self, note_id: str) -> None:
        """Remove a note's vectors and mark it deleted. Raises RecordNotFoundError('note', id) for a note
        the registry never saw."""
        self.library.delete(note_id)

    def note(self, note_id: str) -> NoteDetails:
        """A note's registry record, store payload, elements and image files (empty when not stored)."""
        return stored_notes.note_details(self.library, note_id)

    def list_notes(self, status: NoteStatus | str | None = NoteStatus.INDEXED, offset: int = 0,
                   limit: int = 25) -> NotePage:
        """One page of the registry by note id. Raises ValueError for a bad status or page."""
        return stored_notes.list_page(self.library, status, offset, limit)

    # ---- checking -----------------------------------------------------------------------------------
    def check(self, note: NoteLike, *, limit: int = 10, save: bool = True) -> AuditReport:
        """Audit a note against the library (the note is not stored). With save, the report is kept in the
        records and gets report_id; its matches can then be decided on.

        Raises ValueError for an invalid record, encoder.types.InputError for an image that cannot be
        read, app.audit.ModelVersionMismatchError when the library was indexed by other weights.
        """
        note = as_note(note)
        return self.banks.check(note, limit=limit, save=save).report

    def check_many(self, notes: Iterable[NoteLike], *, limit: int = 10, save: bool = True) -> list[AuditReport]:
        """check() each note, reports in input order. Every record is validated before any check runs
        (ValueError naming the first bad one); a bad image raises InputError naming its note."""
        batch = [as_note(n) for n in notes]
        return [self.check(n, limit=limit, save=save) for n in batch]

    def check_stored(self, note_id: str, *, limit: int = 10, save: bool = True) -> AuditReport:
        """Audit a stored note against the rest of the library from its stored vectors (look-back).
        Raises app.stored_notes.NoteNotStoredError."""
        return stored_notes.check_stored(self.library, note_id, limit=limit, save=save)

    # ---- reports and decisions ----------------------------------------------------------------------
    def get_matches(self, note_id: str) -> list[MatchRecord]:
        """Every recorded match involving the note (as query or as match), highest score first, each with
        its latest decision."""
        with self.library.sessions() as s:
            return reports.matches_for_note(s, note_id)

    def get_report(self, report_id: int) -> ReportRecord:
        """A saved report with its matches. Raises RecordNotFoundError('report', id)."""
        with self.library.sessions() as s:
            record = reports.get_report(s, report_id)
        if record is None:
            raise RecordNotFoundError("report", report_id)
        return record

    def list_reports(self, verdict: str | Sequence[str] | None = None, since: datetime | None = None,
                     order: reports.ReportOrder = "newest", offset: int = 0, limit: int = 50) -> list[ReportSummary]:
        """One page of saved reports (the review queue), newest or highest score first."""
        with self.library.sessions() as s:
            return reports.list_reports(s, verdict=verdict, since=since, order=order, offset=offset, limit=limit)

    def record_decision(self, match_id: int, decision: Decision | str, moderator: str,
                        comment: str | None = None) -> DecisionRecord:
        """Record a moderator's decision (duplicate / infringing / not_a_copy) on one match of a saved
        report, and its audit-log entry. Raises ValueError, RecordNotFoundError('match', id)."""
        return moderation.decide(self.library.sessions, match_id, decision, moderator, comment)

    # ---- thresholds and the audit log ---------------------------------------------------------------
    def thresholds(self) -> moderation.Thresholds:
        """The thresholds in force (an admin's latest change, else the settings)."""
        return moderation.current_thresholds(self.library.sessions, self.settings)

    def set_thresholds(self, actor: str, duplicate: float, infringement: float) -> moderation.Thresholds:
        """An admin changes the thresholds (audit-logged). Raises moderation.PermissionDeniedError, ValueError."""
        return moderation.set_thresholds(self.library.sessions, self.settings, actor, duplicate, infringement)

    def threshold_report(self, thresholds: Sequence[float] = DEFAULT_GRID) -> ThresholdReport:
        """Precision and recall each threshold would have given on the decisions recorded so far."""
        return threshold_report(self.library.sessions, thresholds)

    def audit_log(self, action: Action | str | None = None, actor: str | None = None, offset: int = 0,
                  limit: int = 50) -> list[AuditEntry]:
        """One page of the audit log, newest first."""
        with self.library.sessions() as s:
            return audit_log.list_entries(s, action=action, actor=actor, offset=offset, limit=limit)

    # ---- backfills ----------------------------------------------------------------------------------
    def backfills(self, offset: int = 0, limit: int = 25) -> list[BackfillView]:
        """One page of backfill / re-index jobs, newest first, each with how long it has been stalled (no
        progress for BACKFILL_STALL_FACTOR batch times; resume with `uninote backfill --resume ID`)."""
        with self.library.sessions() as s:
            return list_backfill_views(s, factor=self.settings.backfill_stall_factor,
                                       default_batch_s=self.settings.batch_time_limit_s, offset=offset, limit=limit)


def as_note(note: NoteLike) -> Note:
    """A Note from a Note or a notes.jsonl-style dict. Raises ValueError naming the bad field."""
    if isinstance(note, Note):
        return note
    if not isinstance(note, Mapping):
        raise ValueError(f"expected a Note or a dict, got {type(note).__name__}")
    try:
        return Note.model_validate(dict(note))
    except ValidationError as e:
        who = note.get("note_id")
        reason = describe_validation_error(e)
        raise ValueError(f"note {who!r}: {reason}" if who else reason) from None
