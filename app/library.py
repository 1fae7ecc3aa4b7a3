"""The note library: index, check and delete notes. The one set of functions that the CLI, the Python
client, the Celery tasks and the Gradio dashboard all call.

A note is all-or-nothing: its vectors are written to Qdrant (elements, then the note point) and then its
registry row is marked indexed in one database transaction; if the database step fails, the vectors
written for the note are removed again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from dataclasses import dataclass, field
from typing import Sequence

from sqlalchemy.orm import Session, sessionmaker

from app import moderation
from app.audit import AuditConfig, AuditReport, check
from app.notes import Note
from app.preparation import PreparedNote, prepare_note
from app.records import registry, reports
from app.records.db import make_engine, migrate, session_factory, transaction
from app.settings import Settings, get_settings
from app.store import VectorStore, open_store
from encoder.loading import load_encoder
from encoder.types import ElementKind, EncodedNote, Encoder, InputError, LocalVector

log = logging.getLogger(__name__)


@dataclass
class IndexResult:
    """indexed/skipped: note ids; failed: note id -> the reason (bad input), recorded on the registry row."""

    indexed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def merge(self, other: "IndexResult") -> "IndexResult":
        self.indexed += other.indexed
        self.skipped += other.skipped
        self.failed |= other.failed
        return self


class Library:
    """Encoder + vector store + records, from one Settings object."""

    def __init__(self, settings: Settings, encoder: Encoder, store: VectorStore, sessions: sessionmaker[Session]):
        self.settings = settings
        self.encoder = encoder
        self.store = store
        self.sessions = sessions
        self.audit_config = AuditConfig.from_settings(settings)
        self.store.ensure_collections(encoder.model_version, encoder.dims)

    @classmethod
    def open(cls, settings: Settings | None = None, encoder: Encoder | None = None) -> "Library":
        """Open the library the settings describe (runs pending database migrations)."""
        settings = settings or get_settings()
        url = settings.resolved_database_url
        migrate(url)
        sessions = session_factory(make_engine(url))
        return cls(settings, encoder or load_encoder(settings), open_store(settings), sessions)

    def close(self) -> None:
        self.store.close()

    # -- indexing ---------------------------------------------------------------------------------------
    def index(self, notes: Sequence[Note], *, source: str | None = None, force: bool = False) -> IndexResult:
        """Index a batch of notes. Bad notes are recorded as failed and the rest of the batch goes on.

        Unchanged notes (same content hash, already indexed with this model version) are skipped unless
        `force`. Errors of the store or database (unreachable service) propagate: nothing half-written.
        """
        result = IndexResult()
        readable: list[PreparedNote] = []
        for note in _unique(notes, result):
            try:
                readable.append(prepare_note(note, ocr_enabled=self.settings.ocr_enabled))
            except InputError as e:
                self._record_failure(note, None, source, str(e), result)
        with self.sessions() as s:
            records = registry.get_note_records(s, [p.note.note_id for p in readable])
        prepared: list[PreparedNote] = []
        for p in readable:
            rec = records.get(p.note.note_id)
            if (not force and rec is not None and rec.status == "indexed" and rec.content_hash == p.content_hash
                    and rec.model_version == self.encoder.model_version):
                result.skipped.append(p.note.note_id)
            else:
                prepared.append(p)
        for p, encoded in zip(prepared, self._encode(prepared, source, result)):
            if encoded is not None:
                self._write(p, encoded, source)
                result.indexed.append(p.note.note_id)
        return result

    def _encode(self, prepared: list[PreparedNote], source: str | None, result: IndexResult) -> list[EncodedNote | None]:
        try:
            return list(self.encoder.encode([p.inputs for p in prepared]))
        except InputError:
            pass  # isolate the bad note(s): encode one by one
        out: list[EncodedNote | None] = []
        for p in prepared:
            try:
                out.append(self.encoder.encode([p.inputs])[0])
            except InputError as e:
                self._record_failure(p.note, p.content_hash, source, str(e), result)
                out.append(None)
        return out

    def _write(self, p: PreparedNote, encoded: EncodedNote, source: str | None) -> None:
        note = p.note
        payload = {"title": note.title, "author": note.author, "n_images": len(note.images),
                   "images": [str(path) for path in note.images],
                   "created_at": note.created_at.isoformat() if note.created_at else None}
        self.store.upsert_note(encoded, p.pdq, payload)
        try:
            with transaction(self.sessions) as s:
                registry.upsert_pending(s, note, p.content_hash, source)
                registry.mark_indexed(s, note.note_id, encoded.model_version)
        except Exception:
            self.store.delete_note(note.note_id)  # keep store and registry in step
            raise

    def _record_failure(self, note: Note, chash: str | None, source: str | None, reason: str,
                        result: IndexResult) -> None:
        log.warning("not indexed: %s", reason)
        result.failed[note.note_id] = reason
        chash = chash or hashlib.sha256(note.model_dump_json().encode()).hexdigest()  # images unreadable
        with transaction(self.sessions) as s:
            registry.upsert_pending(s, note, chash, source)
            registry.mark_failed(s, note.note_id, reason)

    def delete(self, note_id: str) -> None:
        """Remove a note's vectors (global and every element) and mark its registry row deleted."""
        self.store.delete_note(note_id)
        with transaction(self.sessions) as s:
            registry.mark_deleted(s, note_id)

    # -- auditing ---------------------------------------------------------------------------------------
    def check(self, note: Note, *, limit: int = 10, save: bool = True) -> AuditReport:
        """Audit a note against the library without storing it; the report is saved in the records.

        Raises InputError for a note whose images cannot be read.
        """
        p = prepare_note(note, ocr_enabled=self.settings.ocr_enabled)
        encoded = self.encoder.encode([p.inputs])[0]
        return self._audit(encoded, p.pdq, limit=limit, save=save)

    def check_stored(self, note_id: str, *, limit: int = 10, save: bool = True) -> AuditReport:
        """Audit a stored note against the rest of the library from its stored vectors (no re-encoding;
        the paper's offline look-back). Raises KeyError when the note is not in the library."""
        stored = self.store.note_vectors([note_id], self.encoder.dims[-1]).get(note_id)
        if stored is None:
            raise KeyError(f"note {note_id!r} is not in the library")
        locals_ = [LocalVector(e.kind, e.index, v, e.image_index, e.box, e.text)
                   for e, v in zip(stored.elements, stored.element_vectors)]
        images = sorted((e for e in stored.elements if e.kind == ElementKind.IMAGE), key=lambda e: e.index)
        encoded = EncodedNote(note_id, stored.global_vector, locals_, stored.payload["model_version"])
        return self._audit(encoded, [e.pdq for e in images], limit=limit, save=save)

    def _audit(self, encoded: EncodedNote, pdq: list, *, limit: int, save: bool) -> AuditReport:
        # Thresholds in force: an admin's latest change (audit log), else the settings.
        t = moderation.current_thresholds(self.sessions, self.settings)
        config = dataclasses.replace(self.audit_config, duplicate_threshold=t.duplicate,
                                     infringement_threshold=t.infringement)
        report = check(encoded, pdq, self.store, config, limit=limit)
        if save:
            with transaction(self.sessions) as s:
                report.report_id = reports.save_report(s, report.to_dict(), query_note_id=encoded.note_id)
        return report


def _unique(notes: Sequence[Note], result: IndexResult) -> list[Note]:
    """Drop repeated note ids inside one batch (the first one wins), recording the others as failed."""
    seen: set[str] = set()
    out = []
    for n in notes:
        if n.note_id in seen:
            result.failed[n.note_id] = f"note {n.note_id!r}: note_id: duplicate id in this batch"
            continue
        seen.add(n.note_id)
        out.append(n)
    return out
