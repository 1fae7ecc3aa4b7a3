"""Continuous ingestion: register notes from a notes file and queue `index_notes_task` for them.

The producer writes (or appends) notes to a notes.jsonl, then calls `submit_notes(path)`: each note gets
a registry row in state pending whose `source` is the file's absolute path, and the ids go to the `index`
queue in chunks. A worker re-reads each note from that source (workers/note_source.py), so messages stay
small and a redelivered message indexes the note as it is now, not as it was when queued.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from app.notes import BadRecord, Note, load_notes
from app.records import registry
from app.records.db import transaction
from app.settings import Settings
from workers.backfill import job_sessions
from workers.celery_app import app, is_eager
from workers.note_source import resolve_source, source_label
from workers.tasks import index_notes_task

DEFAULT_CHUNK = 32  # note ids per index_notes_task message


@dataclass
class Submission:
    """queued: note ids sent to the index queue; bad: records of the file that failed validation;
    unknown: requested ids that are not in the file; task_ids: one per message."""

    queued: list[str] = field(default_factory=list)
    bad: list[BadRecord] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    task_ids: list[str] = field(default_factory=list)


def registration_hash(note: Note) -> str:
    """A 64-hex placeholder content hash for a pending row (sha256 of the note's JSON); Library.index
    replaces it with the real content hash (text + image bytes) when the note is indexed."""
    return hashlib.sha256(note.model_dump_json().encode("utf-8")).hexdigest()


def submit_notes(path: Path, note_ids: list[str] | None = None, *, chunk_size: int = DEFAULT_CHUNK,
                 allow_outside: bool = False, settings: Settings | None = None) -> Submission:
    """Register the notes of `path` (all, or only `note_ids`) as pending and queue them for indexing.
    allow_outside: images outside the file's folder are read (a trusted producer), here and by the worker.
    In-process mode (no broker) they are indexed before this returns, and a task's failure is raised here.
    Raises FileNotFoundError, ValueError for chunk_size < 1."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    jsonl = resolve_source(path)
    source = source_label(jsonl)
    notes, bad = load_notes(jsonl, allow_outside=allow_outside)
    out = Submission(bad=bad)
    if note_ids is not None:
        wanted = set(note_ids)
        out.unknown = sorted(wanted - {n.note_id for n in notes})
        notes = [n for n in notes if n.note_id in wanted]
    with transaction(job_sessions(settings)) as s:
        for note in notes:
            registry.upsert_pending(s, note, registration_hash(note), source)
    ids = [n.note_id for n in notes]
    for start in range(0, len(ids), chunk_size):
        chunk = ids[start:start + chunk_size]
        result = index_notes_task.apply_async((chunk, False, allow_outside))
        if is_eager(app):
            result.get()  # in-process: raise the task's failure here, as a plain call would
        out.task_ids.append(result.id)
        out.queued += chunk
    return out
