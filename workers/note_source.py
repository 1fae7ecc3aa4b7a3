"""Where a task finds a note's content: the notes file it came from.

Tasks pass ids, never note bodies or images (Celery's advice: pass ids, re-fetch inside). A note's
content lives in its *source*, the notes.jsonl it was read from (app/notes.py format: one JSON object a
line, image paths relative to the file's folder). Two ways in:
- by position, for backfills: `read_batch(path, cursor, cursor_bytes, n_lines)` reads lines
  [cursor, cursor + n_lines) starting at byte offset `cursor_bytes` (a resumed backfill seeks there);
- by id, for `index_notes_task(note_ids)`, `lookback_task(note_id)` and the re-index: the registry row
  records `source` (the absolute path of the notes.jsonl) and `find_notes(path, ids)` looks the ids up
  through a per-process index {note_id: byte offset} of that file, built on first use by one scan and
  rebuilt when the file's size or mtime changes.
A source is append-friendly (new notes go at the end; the byte offsets of old lines stay valid).
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from app.notes import BadRecord, Note, parse_record

NOTES_FILE = "notes.jsonl"
MAX_CACHED_SOURCES = 8  # id indexes kept per process (an index costs ~100 bytes per note)


def resolve_source(path: Path | str) -> Path:
    """The absolute path of the notes.jsonl that `path` names (the file itself, or a folder holding one).
    Raises FileNotFoundError naming the path when there is none."""
    p = Path(path).expanduser().resolve()
    jsonl = p / NOTES_FILE if p.is_dir() else p
    if not jsonl.is_file():
        raise FileNotFoundError(f"no notes file at {jsonl} (expected a notes.jsonl or a folder holding one)")
    return jsonl


def count_lines(jsonl: Path) -> int:
    """Number of lines in the file (a last line without a newline counts)."""
    n, last = 0, b"\n"
    with jsonl.open("rb") as f:
        while chunk := f.read(1 << 20):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (last != b"\n")


@dataclass
class SourceBatch:
    """Lines [start, next_cursor) of a notes file: the valid notes (with their 1-based line numbers), the bad
    records, and where the next batch starts (line count and byte offset)."""

    notes: list[tuple[int, Note]] = field(default_factory=list)
    bad: list[BadRecord] = field(default_factory=list)
    next_cursor: int = 0
    next_cursor_bytes: int = 0
    at_end: bool = False


def read_batch(jsonl: Path, cursor: int, cursor_bytes: int, n_lines: int, *,
               allow_outside: bool = False) -> SourceBatch:
    """Read up to `n_lines` lines from line `cursor` (0-based count of lines already consumed), which starts at
    byte `cursor_bytes` (0 with cursor > 0 means unknown: the lines before are skipped by reading).
    Lines are parsed by app.notes.parse_record (allow_outside: image paths outside the file's folder pass).
    at_end: the file has no line after this batch. Raises FileNotFoundError, ValueError for n_lines < 1."""
    if n_lines < 1:
        raise ValueError(f"n_lines must be >= 1, got {n_lines}")
    root = jsonl.parent
    out = SourceBatch(next_cursor=cursor)
    with jsonl.open("rb") as f:
        if cursor_bytes > 0 or cursor == 0:
            f.seek(cursor_bytes)
        else:
            for _ in range(cursor):
                if not f.readline():
                    break
        for _ in range(n_lines):
            raw = f.readline()
            if not raw:
                break
            out.next_cursor += 1
            parsed = parse_record(raw, out.next_cursor, root, allow_outside=allow_outside)
            if isinstance(parsed, Note):
                out.notes.append((out.next_cursor, parsed))
            elif isinstance(parsed, BadRecord):
                out.bad.append(parsed)
        out.next_cursor_bytes = f.tell()
        out.at_end = not f.readline()
    return out


class _IdIndex:
    """{note_id: byte offset of its line} of one file, valid for one (size, mtime)."""

    def __init__(self, jsonl: Path):
        st = jsonl.stat()
        self.key = (st.st_size, st.st_mtime_ns)
        self.offsets: dict[str, int] = {}
        with jsonl.open("rb") as f:
            offset = 0
            for raw in f:
                if raw.strip():
                    try:
                        obj = json.loads(raw)
                        note_id = obj.get("note_id") if isinstance(obj, dict) else None
                    except ValueError:  # not JSON, or not UTF-8 (UnicodeDecodeError): a bad record
                        note_id = None
                    if isinstance(note_id, str):
                        self.offsets.setdefault(note_id, offset)  # the first occurrence wins (load_notes rule)
                offset += len(raw)


_indexes: OrderedDict[Path, _IdIndex] = OrderedDict()
_indexes_lock = threading.Lock()


def _index_of(jsonl: Path) -> _IdIndex:
    st = jsonl.stat()
    with _indexes_lock:
        idx = _indexes.get(jsonl)
        if idx is not None and idx.key == (st.st_size, st.st_mtime_ns):
            _indexes.move_to_end(jsonl)
            return idx
    idx = _IdIndex(jsonl)
    with _indexes_lock:
        _indexes[jsonl] = idx
        while len(_indexes) > MAX_CACHED_SOURCES:
            _indexes.popitem(last=False)
    return idx


def find_notes(source: Path | str, note_ids: list[str], *,
               allow_outside: bool = False) -> tuple[dict[str, Note], dict[str, str]]:
    """Look notes up by id in their notes file. Returns (found: id -> Note with absolute image paths,
    missing: id -> why it could not be read: not in the file, or its line is a bad record, e.g. an image
    path outside the file's folder without allow_outside). Raises FileNotFoundError when the source file
    itself is gone."""
    jsonl = resolve_source(source)
    idx = _index_of(jsonl)
    found: dict[str, Note] = {}
    missing: dict[str, str] = {}
    with jsonl.open("rb") as f:
        for note_id in note_ids:
            offset = idx.offsets.get(note_id)
            if offset is None:
                missing[note_id] = f"note {note_id!r} is not in its source {jsonl}"
                continue
            f.seek(offset)
            parsed = parse_record(f.readline(), 0, jsonl.parent, allow_outside=allow_outside)
            if isinstance(parsed, Note) and parsed.note_id == note_id:
                found[note_id] = parsed
            else:
                why = parsed.error if isinstance(parsed, BadRecord) else "the line changed"
                missing[note_id] = f"note {note_id!r} in {jsonl}: {why}"
    return found, missing


def clear_cache() -> None:
    """Forget every id index of this process (tests; a worker that knows its sources were rewritten)."""
    with _indexes_lock:
        _indexes.clear()


def source_label(jsonl: Path) -> str:
    """The string recorded as a note's registry `source`: the absolute path of its notes.jsonl."""
    return os.fspath(jsonl.resolve())
