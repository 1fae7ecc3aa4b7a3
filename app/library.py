"""The note library: index, check and delete notes. The one set of functions that the CLI, the Python
client, the Celery tasks and the Gradio dashboard all call.

A note is all-or-nothing, for readers too. Write order (`write_vectors`):
1. one transaction: the registry row is set `pending` and the note is entered in `store_writes`;
2. the store writes its vectors (elements, then the note point);
3. one transaction: the registry row is marked `indexed` and the `store_writes` entry removed.
If step 2 or 3 fails, the note's vectors are removed again. A writer killed between 1 and 3 (SIGKILL) leaves
vectors without an `indexed` row, and its `store_writes` entry says so: readers (`check`, `check_stored`,
the dashboard's note details) show only notes whose registry row is `indexed`, and
`sweep_interrupted_writes` (run by `Library.open`) deletes those vectors and marks the note failed, so the
next ingest indexes it again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from contextlib import closing
from dataclasses import dataclass, field
from typing import Sequence

from sqlalchemy.orm import Session, sessionmaker

from app import moderation
from app.audit import AuditConfig, AuditReport, check
from app.match_verification import ImageSource
from app.notes import Note
from app.preparation import PreparedNote, prepare_note, prepared_ahead
from app.records import registry, reports, store_writes
from app.records.db import make_engine, migrate, session_factory, transaction
from app.records.types import NoteStatus
from app.settings import Settings, get_settings
from app.store import VectorStore, open_store
from app.stored_notes import note_image_paths
from encoder.loading import load_encoder
from encoder.types import ElementKind, EncodedNote, Encoder, InputError, LocalVector

log = logging.getLogger(__name__)

INTERRUPTED = "indexing was interrupted (the process stopped while writing its vectors): index it again"


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
        """Open the library the settings describe (runs pending database migrations, then
        `sweep_interrupted_writes`)."""
        settings = settings or get_settings()
        url = settings.resolved_database_url
        migrate(url)
        sessions = session_factory(make_engine(url))
        library = cls(settings, encoder or load_encoder(settings), open_store(settings), sessions)
        try:
            library.sweep_interrupted_writes()
        except BaseException:
            library.close()
            raise
        return library

    def sweep_interrupted_writes(self) -> list[str]:
        """Remove the vectors of notes whose writer died mid-write (module docstring) and mark them failed
        (INTERRUPTED; the next ingest indexes them again). Returns their note ids.

        The embedded store admits one process, so there every entry is a dead write. A shared store (a
        server) may have live writers in other processes: only entries older than `batch_time_limit_s` (no
        batch, so no note write, outlives it) are swept there.
        """
        older_than = 0.0 if self.store.is_local else self.settings.batch_time_limit_s
        swept: list[str] = []
        while True:
            with self.sessions() as s:
                ids = store_writes.interrupted(s, older_than)
            if not ids:
                return swept
            for note_id in ids:
                self.store.delete_note(note_id)
            with transaction(self.sessions) as s:
                for note_id, rec in registry.get_note_records(s, ids).items():
                    if rec.status == NoteStatus.PENDING:
                        registry.mark_failed(s, note_id, INTERRUPTED)
                store_writes.end(s, ids)
            log.warning("removed the vectors of %d note(s) whose indexing was interrupted: %s", len(ids),
                        ", ".join(ids[:10]) + (" ..." if len(ids) > 10 else ""))
            swept += ids

    def indexed_ids(self, note_ids: Sequence[str]) -> set[str]:
        """The note ids among `note_ids` whose registry row is `indexed` (what readers may show)."""
        if not note_ids:
            return set()
        with self.sessions() as s:
            records = registry.get_note_records(s, list(dict.fromkeys(note_ids)))
        return {n for n, rec in records.items() if rec.status == NoteStatus.INDEXED}

    def close(self) -> None:
        self.store.close()

    # -- indexing ---------------------------------------------------------------------------------------
    def index(self, notes: Sequence[Note], *, source: str | None = None, force: bool = False) -> IndexResult:
        """Index a batch of notes. Bad notes are recorded as failed and the rest of the batch goes on.

        Unchanged notes (same content hash, already indexed with this model version) are skipped unless
        `force`. Errors of the store or database (unreachable service) propagate: nothing half-written.

        Pipelined (app.preparation.prepared_ahead): worker threads decode, OCR and hash the next notes while
        this thread encodes and writes the notes already prepared, as one encoder batch each time (so the
        batch grows when the encoder is the slower stage). Notes are written in the order given.
        """
        result = IndexResult()
        with closing(prepared_ahead(_unique(notes, result), ocr_enabled=self.settings.ocr_enabled)) as runs:
            for ready in runs:
                readable: list[PreparedNote] = []
                for note, p in ready:
                    if isinstance(p, InputError):
                        self._record_failure(note, None, source, str(p), result)
                    else:
                        readable.append(p)
                self._index_prepared(readable, source, force, result)
        return result

    def _index_prepared(self, readable: list[PreparedNote], source: str | None, force: bool,
                        result: IndexResult) -> None:
        """Skip the unchanged notes, encode the rest in one batch and write each one."""
        if not readable:
            return
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
        self.write_vectors(note, encoded, p.pdq, payload, p.content_hash, source)

    def write_vectors(self, note: Note, encoded: EncodedNote, pdq: Sequence, payload: dict, content_hash: str,
                      source: str | None) -> None:
        """Store a note's vectors and mark it indexed, in the write order of the module docstring.

        pdq: PDQ hashes by image index (None = no hash); payload: extra store payload; content_hash: 64 hex
        (registry.content_hash). Errors of the store or database propagate after the note's vectors are
        removed again (the note is then absent, its row `pending`).
        """
        note_id = note.note_id
        with transaction(self.sessions) as s:
            registry.upsert_pending(s, note, content_hash, source)
            store_writes.begin(s, [note_id])
        try:
            self.store.upsert_note(encoded, pdq, payload)
            with transaction(self.sessions) as s:
                registry.mark_indexed(s, note_id, encoded.model_version)
                store_writes.end(s, [note_id])
        except Exception:
            self.store.delete_note(note_id)  # keep store and registry in step (the sweep retries this)
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

        The report's timings_ms says where the time went (app.audit). Raises InputError for a note whose
        images cannot be read.
        """
        t0 = time.perf_counter()
        images = self._image_source([])

        def decoded(pixels: list) -> None:  # the query's SIFT features in worker threads during OCR and encoding
            images.query = pixels
            if self.audit_config.verify_candidates > 0 and self.audit_config.verify_pairs > 0:
                images.prefetch()

        p = prepare_note(note, ocr_enabled=self.settings.ocr_enabled, decoded=decoded)
        t_encode = time.perf_counter()
        encoded = self.encoder.encode([p.inputs])[0]
        timings = {"prepare": p.prepare_ms, "ocr": p.ocr_ms, "encode": (time.perf_counter() - t_encode) * 1e3}
        return self._audit(encoded, p.pdq, limit=limit, save=save, started=t0, timings=timings, images=images)

    def check_stored(self, note_id: str, *, limit: int = 10, save: bool = True) -> AuditReport:
        """Audit a stored note against the rest of the library from its stored vectors (no re-encoding;
        the paper's offline look-back; timings_ms: `prepare` is the fetch). Raises KeyError when the note is
        not in the library."""
        t0 = time.perf_counter()
        stored = None
        if self.indexed_ids([note_id]):
            stored = self.store.note_vectors([note_id], self.encoder.dims[-1]).get(note_id)
        if stored is None:
            raise KeyError(f"note {note_id!r} is not in the library")
        locals_ = [LocalVector(e.kind, e.index, v, e.image_index, e.box, e.text)
                   for e, v in zip(stored.elements, stored.element_vectors)]
        images = sorted((e for e in stored.elements if e.kind == ElementKind.IMAGE), key=lambda e: e.index)
        encoded = EncodedNote(note_id, stored.global_vector, locals_, stored.payload["model_version"])
        return self._audit(encoded, [e.pdq for e in images], limit=limit, save=save, started=t0,
                           timings={"prepare": (time.perf_counter() - t0) * 1e3, "ocr": 0.0, "encode": 0.0},
                           images=self._image_source(note_image_paths(self.settings, note_id, stored.payload)))

    def _image_source(self, query_images: Sequence) -> ImageSource:
        """Pixels for geometric verification: the query's images, library notes' image files from the store."""
        return ImageSource(query_images, lambda note_id, payload: note_image_paths(self.settings, note_id, payload))

    def _audit(self, encoded: EncodedNote, pdq: list, *, limit: int, save: bool, started: float,
               timings: dict[str, float], images: ImageSource) -> AuditReport:
        # Thresholds in force: an admin's latest change (audit log), else the settings.
        t = moderation.current_thresholds(self.sessions, self.settings)
        config = dataclasses.replace(self.audit_config, duplicate_threshold=t.duplicate,
                                     infringement_threshold=t.infringement)
        report = check(encoded, pdq, self.store, config, limit=limit, visible=self.indexed_ids, images=images)
        report.timings_ms = {**timings, **report.timings_ms, "total": (time.perf_counter() - started) * 1e3}
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
