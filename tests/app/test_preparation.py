"""app/preparation.py: prepared_ahead prepares notes in worker threads and hands them back in order, each
paired with its PreparedNote or the InputError that refused it (real photos, real bad files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.notes import Note
from app.preparation import PreparedNote, prepare_note, prepared_ahead
from encoder.types import InputError

GROCERY = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "grocery" / "dataset" / "val" / "Packages"


@pytest.fixture(scope="module")
def photos() -> list[Path]:
    found = sorted(GROCERY.rglob("*.jpg"))[:6]
    if len(found) < 6:
        pytest.skip(f"real photos absent under {GROCERY}")
    return found


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_notes_come_back_in_order_each_once_with_their_refusals(photos, tmp_path, workers):
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 100)
    notes = [Note(note_id=f"n{i}", body="牛奶", images=[photos[i]]) for i in range(5)]
    notes.insert(2, Note(note_id="bad", body="x", images=[photos[5], corrupt]))
    runs = list(prepared_ahead(notes, ocr_enabled=False, workers=workers))
    assert all(runs)  # every run holds at least the note it waited for
    flat = [pair for run in runs for pair in run]
    assert [note.note_id for note, _ in flat] == [n.note_id for n in notes]
    refused = dict((note.note_id, p) for note, p in flat if isinstance(p, InputError))
    assert list(refused) == ["bad"] and "images[1]" in str(refused["bad"])
    for note, p in flat:
        if note.note_id != "bad":
            assert isinstance(p, PreparedNote) and p.note is note
            assert p.content_hash == prepare_note(note, ocr_enabled=False).content_hash


def test_nothing_to_prepare_yields_nothing():
    assert list(prepared_ahead([], ocr_enabled=True)) == []
