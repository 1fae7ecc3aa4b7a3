"""The note schema and its on-disk format: `notes.jsonl` (one JSON object a line) beside an images folder.

A record looks like
    {"note_id": "n1", "title": "...", "body": "...", "images": ["images/n1_0.jpg"],
     "ocr_texts": null, "author": "alice", "created_at": "2026-11-01T10:00:00Z", "metadata": {}}
Image paths are relative to the folder that holds `notes.jsonl` (absolute paths are accepted too).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

MAX_IMAGES = 9  # a note carries 1-9 images (or none, if it has text)


class Note(BaseModel):
    """One social post. Raises pydantic.ValidationError naming the field that is wrong."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    note_id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:\-]+$")
    title: str = Field("", max_length=1000)
    body: str = Field("", max_length=20000)
    images: list[Path] = Field(default_factory=list, max_length=MAX_IMAGES)
    ocr_texts: list[str] | None = None
    author: str | None = None
    created_at: datetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("ocr_texts")
    @classmethod
    def _drop_blank_ocr(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else [t.strip() for t in v if t.strip()]

    @model_validator(mode="after")
    def _not_empty(self) -> "Note":
        if not (self.title or self.body or self.images):
            raise ValueError("empty note: no title, body or images")
        return self

    def resolve_images(self, root: Path) -> "Note":
        """A copy whose relative image paths are made absolute against `root`."""
        return self.model_copy(update={"images": [p if p.is_absolute() else root / p for p in self.images]})


@dataclass(frozen=True)
class BadRecord:
    """A record that failed validation: where it is and what was wrong."""

    line: int
    note_id: str | None
    error: str

    def __str__(self) -> str:
        who = f" (note {self.note_id!r})" if self.note_id else ""
        return f"line {self.line}{who}: {self.error}"


def describe_validation_error(err: ValidationError) -> str:
    """'field: message; field: message' from a pydantic error (the field path names what was wrong)."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "note"
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)


def load_notes(path: Path) -> tuple[list[Note], list[BadRecord]]:
    """Read a notes folder (containing notes.jsonl) or a .jsonl file.

    Returns (valid notes with absolute image paths, bad records by line number). Duplicate note ids in
    one file are bad records from the second occurrence on. Raises FileNotFoundError if nothing is there.
    """
    path = Path(path)
    jsonl = path / "notes.jsonl" if path.is_dir() else path
    if not jsonl.is_file():
        raise FileNotFoundError(f"no notes file at {jsonl}")
    root = jsonl.parent
    notes: list[Note] = []
    bad: list[BadRecord] = []
    seen: set[str] = set()
    with jsonl.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as e:
                bad.append(BadRecord(lineno, None, f"not JSON: {e.msg}"))
                continue
            note_id = raw.get("note_id") if isinstance(raw, dict) else None
            note_id = note_id if isinstance(note_id, str) else None
            try:
                note = Note.model_validate(raw)
            except ValidationError as e:
                bad.append(BadRecord(lineno, note_id, describe_validation_error(e)))
                continue
            if note.note_id in seen:
                bad.append(BadRecord(lineno, note.note_id, "note_id: duplicate id in this batch"))
                continue
            seen.add(note.note_id)
            notes.append(note.resolve_images(root))
    return notes, bad


def write_notes(notes: list[Note], path: Path) -> Path:
    """Write notes as `path/notes.jsonl` (image paths made relative to `path` when inside it)."""
    path.mkdir(parents=True, exist_ok=True)
    out = path / "notes.jsonl"
    with out.open("w", encoding="utf-8") as f:
        for n in notes:
            imgs = [str(p.relative_to(path)) if p.is_relative_to(path) else str(p) for p in n.images]
            f.write(json.dumps(n.model_dump(mode="json") | {"images": imgs}, ensure_ascii=False) + "\n")
    return out
