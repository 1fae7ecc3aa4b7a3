"""The note registry: which notes are in the index, with what content and which weights.

Plain functions over a Session (the caller owns the transaction: app.records.db.transaction);
they return app.records.types.NoteRecord, never ORM rows (HMA style).

State machine (paper-independent bookkeeping of app/indexing.py):
    upsert_pending -> pending --mark_indexed--> indexed
                             `--mark_failed---> failed (last_error kept until the note is indexed)
    any state --mark_deleted--> deleted;   upsert_pending revives failed/indexed/deleted notes as pending.
mark_indexed / mark_failed leave a deleted note deleted (a deletion that raced an indexing job wins);
the returned record's status tells the caller to drop the vectors it just wrote.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.notes import Note
from app.records.errors import RecordNotFoundError
from app.records.models import NoteRow, utcnow
from app.records.paging import check_page
from app.records.types import NoteRecord, NoteStatus

HASH_CHUNK_BYTES = 1 << 20


def content_hash(note: Note) -> str:
    """sha256 hex (64 chars) of the note's content: its canonical JSON plus the bytes of its images.

    Canonical JSON = every field except the image paths (sorted keys, no spaces, UTF-8), with the
    images listed as the sha256 of their bytes in note order. So the hash changes with any text,
    metadata or image byte, and not with where the images lie on disk.
    Raises FileNotFoundError naming the note and the path when an image cannot be read (relative image
    paths are read against the working directory: use Note.resolve_images first).
    """
    image_digests = []
    for i, path in enumerate(note.images):
        try:
            image_digests.append(_file_sha256(Path(path)))
        except OSError as e:
            raise FileNotFoundError(f"note {note.note_id!r}: images[{i}]: cannot read {path}: {e.strerror or e}") from e
    fields = note.model_dump(mode="json", exclude={"images"})
    canonical = json.dumps(
        {"note": fields, "image_sha256": image_digests}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def upsert_pending(session: Session, note: Note, content_hash: str, source: str | None = None) -> NoteRecord:
    """Register `note` (new or changed) as pending indexing; returns its record.

    Inserts or updates title, author, created_at, source, content_hash and sets status=pending in one
    INSERT .. ON CONFLICT statement (safe when two workers register one note at once). model_version,
    indexed_at and last_error are kept (they describe the last indexing attempt).
    content_hash: 64 hex chars (see content_hash()). Raises ValueError for a malformed hash.
    """
    _check_hash(content_hash)
    now = utcnow()
    values = {
        "note_id": note.note_id,
        "status": NoteStatus.PENDING.value,
        "content_hash": content_hash,
        "title": note.title,
        "author": note.author,
        "created_at": note.created_at,
        "source": source,
        "updated_at": now,
    }
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(NoteRow).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[NoteRow.note_id],
        set_={k: stmt.excluded[k] for k in values if k != "note_id"},
    )
    session.execute(stmt)
    # populate_existing: the identity map may hold the row as it was before the upsert
    row = session.get(NoteRow, note.note_id, populate_existing=True)
    assert row is not None  # just upserted in this transaction
    return _to_record(row)


def mark_indexed(session: Session, note_id: str, model_version: str) -> NoteRecord:
    """The note's vectors were written by `model_version`: status=indexed, indexed_at=now, last_error
    cleared. A deleted note stays deleted. Raises RecordNotFoundError for an unknown note_id,
    ValueError for an empty model_version."""
    if not model_version:
        raise ValueError("model_version must be a non-empty string")
    row = _row(session, note_id)
    if row.status != NoteStatus.DELETED:
        now = utcnow()
        row.status, row.model_version, row.indexed_at, row.last_error = NoteStatus.INDEXED, model_version, now, None
        row.updated_at = now
        session.flush()
    return _to_record(row)


def mark_failed(session: Session, note_id: str, error: str) -> NoteRecord:
    """The last indexing attempt failed with `error` (kept in last_error). A deleted note stays deleted.
    Raises RecordNotFoundError for an unknown note_id, ValueError for an empty error."""
    if not error or not error.strip():
        raise ValueError("error must say why indexing failed (got an empty string)")
    row = _row(session, note_id)
    if row.status != NoteStatus.DELETED:
        row.status, row.last_error, row.updated_at = NoteStatus.FAILED, error, utcnow()
        session.flush()
    return _to_record(row)


def mark_deleted(session: Session, note_id: str) -> NoteRecord:
    """Tombstone the note (its vectors are removed by the caller). Idempotent.
    Raises RecordNotFoundError for an unknown note_id."""
    row = _row(session, note_id)
    if row.status != NoteStatus.DELETED:
        row.status, row.updated_at = NoteStatus.DELETED, utcnow()
        session.flush()
    return _to_record(row)


def get_note_record(session: Session, note_id: str) -> NoteRecord | None:
    """The note's record, or None if the registry has never seen it."""
    row = session.get(NoteRow, note_id)
    return None if row is None else _to_record(row)


def get_note_records(session: Session, note_ids: Sequence[str]) -> dict[str, NoteRecord]:
    """note_id -> record of the given ids the registry has seen, in one query."""
    rows = session.scalars(select(NoteRow).where(NoteRow.note_id.in_(list(note_ids)))) if note_ids else []
    return {row.note_id: _to_record(row) for row in rows}


def list_notes(
    session: Session, status: NoteStatus | str | None = None, offset: int = 0, limit: int = 100
) -> list[NoteRecord]:
    """One page of records ordered by note_id, optionally only those with `status`.
    Raises ValueError for an unknown status, offset < 0 or limit outside 1..MAX_PAGE_SIZE."""
    check_page(offset, limit)
    query = select(NoteRow).order_by(NoteRow.note_id).offset(offset).limit(limit)
    if status is not None:
        query = query.where(NoteRow.status == _status(status).value)
    return [_to_record(row) for row in session.scalars(query)]


def count_by_status(session: Session) -> dict[str, int]:
    """{status: number of notes} for every NoteStatus (zeros included)."""
    counts = {s.value: 0 for s in NoteStatus}
    for status, n in session.execute(select(NoteRow.status, func.count()).group_by(NoteRow.status)):
        counts[status] = n
    return counts


def _status(status: NoteStatus | str) -> NoteStatus:
    try:
        return NoteStatus(status)
    except ValueError:
        raise ValueError(f"unknown note status {status!r}: expected one of {[s.value for s in NoteStatus]}") from None


def _check_hash(value: str) -> None:
    if not (isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)):
        raise ValueError(f"content_hash must be 64 lowercase hex chars (sha256), got {value!r}")


def _row(session: Session, note_id: str) -> NoteRow:
    row = session.get(NoteRow, note_id)
    if row is None:
        raise RecordNotFoundError("note", note_id)
    return row


def _to_record(row: NoteRow) -> NoteRecord:
    return NoteRecord(
        note_id=row.note_id,
        status=NoteStatus(row.status),
        content_hash=row.content_hash,
        title=row.title,
        author=row.author,
        created_at=row.created_at,
        source=row.source,
        model_version=row.model_version,
        indexed_at=row.indexed_at,
        last_error=row.last_error,
        updated_at=row.updated_at,
    )
