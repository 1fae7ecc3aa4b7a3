"""Reading notes from their source file: by cursor (backfills) and by id (tasks that receive ids)."""

from __future__ import annotations

import json

import pytest

from app.notes import Note
from workers.note_source import clear_cache, count_lines, find_notes, read_batch, resolve_source


def _file(tmp_path, lines):
    path = tmp_path / "notes.jsonl"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _note(i):
    return json.dumps({"note_id": f"n{i}", "title": f"标题 {i}", "images": [f"images/n{i}.jpg"]}, ensure_ascii=False)


def test_batches_follow_the_cursor_and_resume_at_the_byte_offset(tmp_path):
    path = _file(tmp_path, [_note(0), "", "{broken", _note(3), json.dumps({"note_id": "x"}), _note(5)])
    assert resolve_source(tmp_path) == path.resolve() and count_lines(path) == 6
    first = read_batch(path, 0, 0, 3)
    assert [(line, n.note_id) for line, n in first.notes] == [(1, "n0")]
    assert [(b.line, b.error[:8]) for b in first.bad] == [(3, "not JSON")]
    assert first.next_cursor == 3 and not first.at_end
    assert first.notes[0][1].images == [tmp_path / "images" / "n0.jpg"]  # made absolute against the file
    second = read_batch(path, first.next_cursor, first.next_cursor_bytes, 3)
    assert [n.note_id for _, n in second.notes] == ["n3", "n5"] and second.bad[0].note_id == "x"
    assert second.next_cursor == 6 and second.at_end
    unknown_offset = read_batch(path, 3, 0, 10)  # byte offset unknown: the lines before are skipped by reading
    assert [n.note_id for _, n in unknown_offset.notes] == ["n3", "n5"]


def test_notes_are_found_by_id_and_appends_are_seen(tmp_path):
    clear_cache()
    path = _file(tmp_path, [_note(0), _note(1), "{broken"])
    found, missing = find_notes(path, ["n1", "n9"])
    assert isinstance(found["n1"], Note) and found["n1"].title == "标题 1"
    assert "not in its source" in missing["n9"]
    with path.open("a", encoding="utf-8") as f:  # the producer appends a note
        f.write(_note(9) + "\n")
    found, missing = find_notes(tmp_path, ["n9"])
    assert list(found) == ["n9"] and not missing


def test_a_missing_source_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no notes file at"):
        resolve_source(tmp_path / "nowhere")
