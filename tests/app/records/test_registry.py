"""app.records.registry on SQLite and PostgreSQL: content hashes of real notes, state transitions,
pagination and counts. Notes are built from the real grocery catalogue (../shared/data/grocery)."""

from __future__ import annotations

import csv
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

from app.notes import Note
from app.records import registry
from app.records.db import transaction
from app.records.errors import RecordNotFoundError
from app.records.types import NoteStatus

GROCERY = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "grocery"


def grocery_notes(n: int) -> list[Note]:
    """The first n catalogue products as notes: title, description, iconic image (real photos and text)."""
    if not (GROCERY / "products.csv").is_file():
        pytest.skip(f"real data missing: {GROCERY.resolve()} (see ../shared/data/README.md)")
    notes = []
    with (GROCERY / "products.csv").open(encoding="utf-8") as f:
        for row in list(csv.DictReader(f))[:n]:
            notes.append(Note(
                note_id=f"grocery-{row['class_id']}",
                title=row["product_title"] or row["class_name"].replace("-", " "),
                body=row["product_description"],
                images=[GROCERY / "dataset" / row["iconic_image"]],
                author="catalogue",
                created_at=datetime(2026, 11, 1, 10, 0, tzinfo=timezone.utc),
            ))
    return notes


# -- content_hash (no database) -------------------------------------------------------------------

def test_content_hash_is_stable_and_ignores_where_images_lie(tmp_path: Path):
    note = grocery_notes(1)[0]
    h = registry.content_hash(note)
    assert len(h) == 64 and h == registry.content_hash(note)
    moved = tmp_path / "elsewhere.jpg"
    shutil.copyfile(note.images[0], moved)
    assert registry.content_hash(note.model_copy(update={"images": [moved]})) == h


def test_content_hash_changes_with_text_and_with_one_image_byte(tmp_path: Path):
    note = grocery_notes(1)[0]
    h = registry.content_hash(note)
    assert registry.content_hash(note.model_copy(update={"title": note.title + "!"})) != h
    assert registry.content_hash(note.model_copy(update={"ocr_texts": ["SALE"]})) != h
    edited = tmp_path / "edited.jpg"
    data = bytearray(note.images[0].read_bytes())
    data[len(data) // 2] ^= 0x01
    edited.write_bytes(bytes(data))
    assert registry.content_hash(note.model_copy(update={"images": [edited]})) != h


def test_content_hash_of_a_missing_image_names_note_and_path(tmp_path: Path):
    note = Note(note_id="gone", title="t", images=[tmp_path / "missing.jpg"])
    with pytest.raises(FileNotFoundError, match=r"note 'gone': images\[0\]: cannot read .*missing.jpg"):
        registry.content_hash(note)


# -- state transitions (both backends) ------------------------------------------------------------

def test_pending_indexed_failed_deleted_transitions(record_sessions):
    note = grocery_notes(1)[0]
    h = registry.content_hash(note)
    with transaction(record_sessions) as s:
        rec = registry.upsert_pending(s, note, h, source="grocery/products.csv")
    assert (rec.status, rec.content_hash, rec.title, rec.author) == (NoteStatus.PENDING, h, note.title, "catalogue")
    assert rec.created_at == note.created_at and rec.source == "grocery/products.csv"
    assert rec.model_version is None and rec.indexed_at is None and rec.updated_at.tzinfo is not None

    with transaction(record_sessions) as s:
        rec = registry.mark_indexed(s, note.note_id, "compact-v1")
    assert rec.status == NoteStatus.INDEXED and rec.model_version == "compact-v1"
    assert rec.indexed_at is not None and rec.indexed_at.tzinfo == timezone.utc
    assert rec.is_current(h, "compact-v1") and not rec.is_current(h, "compact-v2")

    with transaction(record_sessions) as s:  # re-registered (e.g. new weights): pending, history kept
        rec = registry.upsert_pending(s, note, h, source="grocery/products.csv")
    assert rec.status == NoteStatus.PENDING and rec.model_version == "compact-v1"
    assert not rec.is_current(h, "compact-v1")

    with transaction(record_sessions) as s:
        registry.mark_deleted(s, note.note_id)
        assert registry.mark_deleted(s, note.note_id).status == NoteStatus.DELETED  # idempotent
        # a deletion that raced an indexing job wins
        assert registry.mark_indexed(s, note.note_id, "compact-v2").status == NoteStatus.DELETED
        assert registry.mark_failed(s, note.note_id, "late error").status == NoteStatus.DELETED
    with transaction(record_sessions) as s:
        rec = registry.get_note_record(s, note.note_id)
    assert rec.status == NoteStatus.DELETED and rec.model_version == "compact-v1" and rec.last_error is None


def test_a_failed_note_keeps_its_last_error_until_indexed(record_sessions):
    note = grocery_notes(1)[0]
    h = registry.content_hash(note)
    with transaction(record_sessions) as s:
        registry.upsert_pending(s, note, h)
        registry.mark_failed(s, note.note_id, "InputError: images[0]: truncated JPEG")
    with transaction(record_sessions) as s:  # a new session reads what was committed
        rec = registry.get_note_record(s, note.note_id)
    assert rec.status == NoteStatus.FAILED and rec.last_error == "InputError: images[0]: truncated JPEG"

    with transaction(record_sessions) as s:  # retry: pending again, the error still visible
        rec = registry.upsert_pending(s, note, h)
    assert rec.status == NoteStatus.PENDING and rec.last_error == "InputError: images[0]: truncated JPEG"

    with transaction(record_sessions) as s:
        rec = registry.mark_indexed(s, note.note_id, "compact-v1")
    assert rec.status == NoteStatus.INDEXED and rec.last_error is None


def test_records_of_many_notes_come_from_one_query(record_sessions):
    notes = grocery_notes(3)
    with transaction(record_sessions) as s:
        for note in notes[:2]:
            registry.upsert_pending(s, note, registry.content_hash(note))
        registry.mark_indexed(s, notes[0].note_id, "compact-v1")
    with transaction(record_sessions) as s:
        records = registry.get_note_records(s, [n.note_id for n in notes] + ["never-seen"])
        single = registry.get_note_record(s, notes[1].note_id)
        assert registry.get_note_records(s, []) == {}
    assert sorted(records) == sorted(n.note_id for n in notes[:2])
    assert records[notes[0].note_id].status == NoteStatus.INDEXED
    assert records[notes[1].note_id] == single


def test_upsert_updates_changed_content(record_sessions):
    note = grocery_notes(1)[0]
    changed = note.model_copy(update={"title": "Relabelled", "author": "bob"})
    with transaction(record_sessions) as s:
        registry.upsert_pending(s, note, registry.content_hash(note))
        registry.mark_indexed(s, note.note_id, "compact-v1")
        rec = registry.upsert_pending(s, changed, registry.content_hash(changed), source="edit")
    assert (rec.title, rec.author, rec.source, rec.status) == ("Relabelled", "bob", "edit", NoteStatus.PENDING)
    assert rec.content_hash == registry.content_hash(changed) != registry.content_hash(note)


def test_bad_input_and_unknown_notes_give_clear_errors(record_sessions):
    note = grocery_notes(1)[0]
    with transaction(record_sessions) as s:
        with pytest.raises(ValueError, match="content_hash must be 64"):
            registry.upsert_pending(s, note, "abc")
        with pytest.raises(RecordNotFoundError, match="no note with id 'nope'"):
            registry.mark_indexed(s, "nope", "compact-v1")
        with pytest.raises(RecordNotFoundError):
            registry.mark_failed(s, "nope", "x")
        with pytest.raises(RecordNotFoundError):
            registry.mark_deleted(s, "nope")
        registry.upsert_pending(s, note, registry.content_hash(note))
        with pytest.raises(ValueError, match="error must say why"):
            registry.mark_failed(s, note.note_id, "  ")
        with pytest.raises(ValueError, match="model_version"):
            registry.mark_indexed(s, note.note_id, "")
        with pytest.raises(ValueError, match="unknown note status 'done'"):
            registry.list_notes(s, status="done")
        with pytest.raises(ValueError, match="limit"):
            registry.list_notes(s, limit=0)
        with pytest.raises(ValueError, match="offset"):
            registry.list_notes(s, offset=-1)
        assert registry.get_note_record(s, "nope") is None


def test_list_notes_pages_and_filters_and_counts(record_sessions):
    notes = grocery_notes(12)
    with transaction(record_sessions) as s:
        assert registry.count_by_status(s) == {"pending": 0, "indexed": 0, "failed": 0, "deleted": 0}
        for note in notes:
            registry.upsert_pending(s, note, registry.content_hash(note))
        for note in notes[:5]:
            registry.mark_indexed(s, note.note_id, "compact-v1")
        registry.mark_failed(s, notes[5].note_id, "boom")
        registry.mark_deleted(s, notes[6].note_id)
    with transaction(record_sessions) as s:
        assert registry.count_by_status(s) == {"pending": 5, "indexed": 5, "failed": 1, "deleted": 1}
        pages = [registry.list_notes(s, offset=o, limit=5) for o in (0, 5, 10, 15)]
        indexed = registry.list_notes(s, status=NoteStatus.INDEXED, limit=100)
        failed = registry.list_notes(s, status="failed")
    assert [len(p) for p in pages] == [5, 5, 2, 0]
    ids = [r.note_id for p in pages for r in p]
    assert ids == sorted(n.note_id for n in notes)  # every note once, in note_id order
    assert {r.note_id for r in indexed} == {n.note_id for n in notes[:5]}
    assert [(r.note_id, r.last_error) for r in failed] == [(notes[5].note_id, "boom")]


def test_concurrent_registration_of_the_same_notes_neither_fails_nor_duplicates(record_sessions):
    """Two workers register the same notes at once (a duplicate message): INSERT .. ON CONFLICT, one row each."""
    from concurrent.futures import ThreadPoolExecutor

    notes = grocery_notes(6)
    hashes = {n.note_id: registry.content_hash(n) for n in notes}

    def register(worker: int) -> int:
        for note in notes if worker == 0 else notes[::-1]:
            with transaction(record_sessions) as s:
                registry.upsert_pending(s, note, hashes[note.note_id], source=f"worker-{worker}")
        return worker

    with ThreadPoolExecutor(max_workers=2) as pool:
        assert sorted(pool.map(register, range(2))) == [0, 1]
    with transaction(record_sessions) as s:
        records = registry.list_notes(s, limit=100)
    assert sorted(r.note_id for r in records) == sorted(hashes)
    assert all(r.status == NoteStatus.PENDING and r.content_hash == hashes[r.note_id] for r in records)
