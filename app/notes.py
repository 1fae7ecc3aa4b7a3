"""The note schema and its on-disk format: `notes.jsonl` (one JSON object a line) beside an images folder.

A record looks like
    {"note_id": "n1", "title": "...", "body": "...", "images": ["images/n1_0.jpg"],
     "ocr_texts": null, "author": "alice", "created_at": "2026-11-01T10:00:00Z", "metadata": {}}
Image paths are relative to the folder that holds `notes.jsonl`. A path that resolves outside that folder
(an absolute path elsewhere, `../` climbing out, or a symlink pointing out) is a bad record unless the
caller passes allow_outside=True (`--allow-outside`: a trusted local run), since a notes file is user input
and the process reading it may see files its author may not.
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

    def resolve_images(self, root: Path, *, allow_outside: bool = False) -> "Note":
        """A copy whose image paths are made absolute against `root` (the notes file's folder).

        Unless allow_outside, every path is resolved (symlinks followed, `..` removed) and must lie inside
        `root` (also resolved); the copy holds the resolved paths. Raises ImagePathError naming the note,
        the field (`images[1]`) and the path as written otherwise.
        """
        base = Path(root).resolve()
        images = []
        for i, path in enumerate(self.images):
            full = path if path.is_absolute() else base / path
            if not allow_outside:
                field = f"images[{i}]"
                try:
                    full = full.resolve()  # follows every symlink on the way: what open() would read
                except (OSError, RuntimeError, ValueError) as e:  # a symlink loop, a NUL byte
                    raise ImagePathError(self.note_id, field, path, f"cannot be resolved ({e})") from None
                if not full.is_relative_to(base):
                    raise ImagePathError(self.note_id, field, path, f"resolves outside the notes folder {base}")
            images.append(full)
        return self.model_copy(update={"images": images})


class ImagePathError(ValueError):
    """An image path of a notes file resolves outside the file's folder (and allow_outside was not given)."""

    def __init__(self, note_id: str, field: str, path: Path, why: str):
        self.note_id, self.field, self.path = note_id, field, path
        super().__init__(f"{field}: {str(path)!r} {why} (refused; --allow-outside reads it on a trusted "
                         "local run)")


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


def parse_record(raw: bytes, lineno: int, root: Path, *, allow_outside: bool = False) -> Note | BadRecord | None:
    """One notes.jsonl line (bytes) -> a Note with absolute image paths (Note.resolve_images against `root`),
    a BadRecord saying what is wrong (not UTF-8, not JSON, a field, an image path outside `root`), or None
    for a blank line. Never raises for bad content."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return BadRecord(lineno, None, f"not UTF-8: byte 0x{raw[e.start]:02x} at column {e.start + 1} ({e.reason})")
    if not text.strip():
        return None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        return BadRecord(lineno, None, f"not JSON: {e.msg}")
    note_id = obj.get("note_id") if isinstance(obj, dict) else None
    note_id = note_id if isinstance(note_id, str) else None
    try:
        return Note.model_validate(obj).resolve_images(root, allow_outside=allow_outside)
    except ValidationError as e:
        return BadRecord(lineno, note_id, describe_validation_error(e))
    except ImagePathError as e:
        return BadRecord(lineno, note_id, str(e))


def load_notes(path: Path, *, allow_outside: bool = False) -> tuple[list[Note], list[BadRecord]]:
    """Read a notes folder (containing notes.jsonl) or a .jsonl file.

    Returns (valid notes with absolute image paths, bad records by line number: parse_record's rules).
    Duplicate note ids in one file are bad records from the second occurrence on. allow_outside: accept
    image paths outside the file's folder. Raises FileNotFoundError if nothing is there.
    """
    path = Path(path)
    jsonl = path / "notes.jsonl" if path.is_dir() else path
    if not jsonl.is_file():
        raise FileNotFoundError(f"no notes file at {jsonl}")
    root = jsonl.parent
    notes: list[Note] = []
    bad: list[BadRecord] = []
    seen: set[str] = set()
    with jsonl.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            parsed = parse_record(raw, lineno, root, allow_outside=allow_outside)
            if isinstance(parsed, BadRecord):
                bad.append(parsed)
            elif parsed is not None and parsed.note_id in seen:
                bad.append(BadRecord(lineno, parsed.note_id, "note_id: duplicate id in this batch"))
            elif parsed is not None:
                seen.add(parsed.note_id)
                notes.append(parsed)
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
