import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.notes import Note, load_notes, write_notes


def _write(folder: Path, lines: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notes.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_bad_records_are_reported_by_line_and_field(tmp_path):
    folder = _write(tmp_path, [
        json.dumps({"note_id": "ok-1", "title": "你好", "images": ["images/a.jpg"]}),
        "{not json",
        json.dumps({"note_id": "empty"}),
        json.dumps({"note_id": "bad-type", "title": 5}),
        json.dumps({"title": "no id"}),
        json.dumps({"note_id": "ok-1", "body": "again"}),
        json.dumps({"note_id": "many", "images": [f"{i}.jpg" for i in range(10)]}),
        json.dumps({"note_id": "extra", "body": "x", "colour": "red"}),
    ])
    notes, bad = load_notes(folder)
    assert [n.note_id for n in notes] == ["ok-1"]
    assert notes[0].images == [folder / "images" / "a.jpg"]
    by_line = {b.line: str(b) for b in bad}
    assert set(by_line) == {2, 3, 4, 5, 6, 7, 8}
    assert "not JSON" in by_line[2]
    assert "empty note" in by_line[3] and "'empty'" in by_line[3]
    assert "title" in by_line[4]
    assert "note_id" in by_line[5] and "Field required" in by_line[5]
    assert "duplicate id" in by_line[6]
    assert "images" in by_line[7]
    assert "colour" in by_line[8]


def test_write_then_load_round_trip(tmp_path):
    img = tmp_path / "images" / "x.jpg"
    notes = [Note(note_id="a", title="t", body="b", images=[img], ocr_texts=["  ", "SALE"],
                  metadata={"k": 1}), Note(note_id="b", body="only text")]
    write_notes(notes, tmp_path)
    line = json.loads((tmp_path / "notes.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert line["images"] == ["images/x.jpg"]  # stored relative to the folder
    loaded, bad = load_notes(tmp_path)
    assert not bad
    assert loaded == notes
    assert loaded[0].ocr_texts == ["SALE"]


def test_note_id_must_be_safe():
    with pytest.raises(ValidationError, match="note_id"):
        Note(note_id="../etc/passwd", body="x")


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="notes.jsonl"):
        load_notes(tmp_path)


def test_a_line_that_is_not_utf8_is_a_bad_record_and_the_rest_load(tmp_path):
    """One Latin-1 byte (0xe9) in line 2 once aborted the whole file with a UnicodeDecodeError."""
    good = [json.dumps({"note_id": f"n{i}", "title": f"标题 {i}"}, ensure_ascii=False).encode() for i in range(3)]
    broken = b'{"note_id": "latin1", "title": "caf\xe9"}'
    (tmp_path / "notes.jsonl").write_bytes(b"\n".join([good[0], broken, good[1], good[2]]) + b"\n")
    notes, bad = load_notes(tmp_path)
    assert [n.note_id for n in notes] == ["n0", "n1", "n2"]
    assert [(b.line, b.note_id) for b in bad] == [(2, None)]
    assert str(bad[0]) == "line 2: not UTF-8: byte 0xe9 at column 36 (invalid continuation byte)"
