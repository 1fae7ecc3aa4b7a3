"""Stored notes as the moderator sees them: one page of the library, one note's elements and images, and
a check of a stored note by id (Library.check_stored: its stored vectors, nothing re-encoded).

Image files: the store keeps vectors and hashes, not pictures. A note's image paths come from, in order,
its store payload `images` (written at indexing time), the dashboard's uploads folder
(HOME/uploads/<note_id>/), or its registry `source` notes file (read once per file version and cached).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.audit import AuditReport
from app.notes import load_notes
from app.records import registry
from app.records.types import NoteRecord, NoteStatus
from app.settings import Settings
from app.store import StoredElement

if TYPE_CHECKING:
    from app.library import Library

UPLOADS = "uploads"  # HOME/uploads/<note_id>/<n>.<ext>: images of notes checked from the dashboard


class NoteNotStoredError(LookupError):
    """No note with this id is in the vector store (never indexed, failed, or deleted)."""

    def __init__(self, note_id: str):
        self.note_id = note_id
        super().__init__(f"note {note_id!r} is not in the library (never indexed, failed or deleted)")


@dataclass(frozen=True)
class NotePage:
    """One page of the registry. total: notes with this status filter (all pages)."""

    notes: list[NoteRecord]
    offset: int
    limit: int
    total: int

    @property
    def has_next(self) -> bool:
        return self.offset + len(self.notes) < self.total


@dataclass(frozen=True)
class NoteDetails:
    """A note's registry record (None if unknown), store payload, elements and image files (by index;
    None where the file is not found)."""

    note_id: str
    record: NoteRecord | None
    payload: dict[str, Any]
    elements: list[StoredElement]
    images: list[Path | None] = field(default_factory=list)

    @property
    def stored(self) -> bool:
        return bool(self.payload)


def uploads_dir(settings: Settings, note_id: str) -> Path:
    """HOME/uploads/<note_id>: where the dashboard keeps the images of a note it checked."""
    if not note_id or "/" in note_id or note_id.startswith("."):
        raise ValueError(f"not a safe note id for a folder name: {note_id!r}")
    return settings.home / UPLOADS / note_id


def list_page(library: "Library", status: NoteStatus | str | None = NoteStatus.INDEXED, offset: int = 0,
              limit: int = 25) -> NotePage:
    """One page of registry records by note_id (two indexed queries; never the whole library).
    Raises ValueError for an unknown status or a bad page."""
    with library.sessions() as s:
        notes = registry.list_notes(s, status=status, offset=offset, limit=limit)
        counts = registry.count_by_status(s)
    total = sum(counts.values()) if status is None else counts.get(NoteStatus(status).value, 0)
    return NotePage(notes, offset, limit, total)


def note_details(library: "Library", note_id: str) -> NoteDetails:
    """The note's record, payload, elements (sorted by kind, index) and image files; payload and elements
    are empty unless the record is `indexed`."""
    with library.sessions() as s:
        record = registry.get_note_record(s, note_id)
    # vectors without an `indexed` row are an interrupted or unfinished write (app/library.py): not shown
    stored = library.store.get_note(note_id) if record is not None and record.status == NoteStatus.INDEXED else None
    payload = stored.payload if stored else {}
    elements = stored.elements if stored else []
    n_images = int(payload.get("n_images") or 0)
    return NoteDetails(note_id, record, payload, elements, note_image_paths(library.settings, note_id, payload,
                                                                           record, n_images))


def note_image_paths(settings: Settings, note_id: str, payload: dict[str, Any] | None = None,
                     record: NoteRecord | None = None, n_images: int | None = None) -> list[Path | None]:
    """Image files of a note by image index (see the module docstring for where they are looked up).
    Returns [] when none is known; entries are None for files that no longer exist."""
    paths: list[Path] = []
    if payload and payload.get("images"):
        paths = [Path(p) for p in payload["images"]]
    else:
        try:
            folder = uploads_dir(settings, note_id)
        except ValueError:
            folder = None
        if folder is not None and folder.is_dir():
            paths = sorted(folder.iterdir(), key=lambda p: (len(p.stem), p.stem))
        elif record is not None and record.source:
            paths = _images_in_source(record.source, note_id)
    if n_images is not None and n_images and len(paths) > n_images:
        paths = paths[:n_images]
    return [p if p.is_file() else None for p in paths]


def _images_in_source(source: str, note_id: str) -> list[Path]:
    path = Path(source)
    jsonl = path / "notes.jsonl" if path.is_dir() else path
    if not jsonl.is_file():
        return []
    stat = jsonl.stat()
    return list(_source_images(str(jsonl), stat.st_mtime_ns, stat.st_size).get(note_id, ()))


@lru_cache(maxsize=4)
def _source_images(jsonl: str, mtime_ns: int, size: int) -> dict[str, tuple[Path, ...]]:
    """note id -> image paths of one notes file version (mtime_ns and size key the cache)."""
    notes, _ = load_notes(Path(jsonl))
    return {n.note_id: tuple(n.images) for n in notes}


def check_stored(library: "Library", note_id: str, *, limit: int = 10, save: bool = True) -> AuditReport:
    """Audit a stored note against the rest of the library from its stored vectors (look-back,
    Library.check_stored); the report is saved (query_note_id = note_id) unless save=False.
    Raises NoteNotStoredError, ValueError for limit < 1."""
    try:
        return library.check_stored(note_id, limit=limit, save=save)
    except KeyError:
        raise NoteNotStoredError(note_id) from None
