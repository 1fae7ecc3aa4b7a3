"""Fixtures of the worker tests: real grocery notes (../shared/data/grocery), an in-process Library on a tmp
home (local Qdrant + SQLite, the real compact encoder), Redis on 127.0.0.1:6379 db 15 for real workers."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from worker_process import process_library

GROCERY = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "grocery"


def grocery_photos(n: int) -> list[tuple[Path, str, str]]:
    """n real photos (one per class first, then more of each): [(path, class name, product description)]."""
    root = GROCERY.resolve() / "dataset"
    if not (root / "train.txt").is_file():
        pytest.skip(f"real data missing: {root} (the grocery set of ../shared/data, see its README.md)")
    described = {}
    with (GROCERY.resolve() / "products.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            described[row["class_name"]] = (row["product_title"] or row["class_name"].replace("-", " "),
                                            row["product_description"])
    by_class: dict[str, list[Path]] = {}
    for line in (root / "train.txt").read_text().splitlines():
        rel = line.split(",")[0].strip()
        by_class.setdefault(Path(rel).parent.name, []).append(root / rel)
    picked: list[tuple[Path, str, str]] = []
    rank = 0
    while len(picked) < n:
        for cls, paths in sorted(by_class.items()):
            if rank < len(paths) and len(picked) < n:
                title, body = described.get(cls, (cls, ""))
                picked.append((paths[rank], title, body))
        rank += 1
    return picked


def note_record(note_id: str, image: Path, title: str, body: str) -> dict:
    return {"note_id": note_id, "title": title, "body": body, "images": [str(image)], "ocr_texts": []}


def write_notes_file(folder: Path, records: list[dict | str]) -> Path:
    """folder/notes.jsonl with one line per record (a str is written as it is: a bad record)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "notes.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for r in records:
            f.write((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n")
    return path


def corrupt_copy(src: Path, dst: Path) -> Path:
    """A truncated JPEG (the first third of a real photo's bytes): a permanent, per-note input error."""
    data = src.read_bytes()
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(data[: len(data) // 3])
    return dst


@pytest.fixture
def grocery_file(tmp_path: Path):
    """A factory: make(n, corrupt=(), bad_lines=()) -> notes.jsonl of n real grocery notes g000.. whose photos
    are copied into its images/ folder, where the notes listed in `corrupt` get a truncated copy of their
    photo and `bad_lines` are appended."""

    def make(n: int, corrupt: tuple[int, ...] = (), bad_lines: tuple[str, ...] = (), name: str = "notes") -> Path:
        folder = tmp_path / name
        (folder / "images").mkdir(parents=True, exist_ok=True)
        records: list[dict | str] = []
        for i, (photo, title, body) in enumerate(grocery_photos(n)):
            image = folder / "images" / f"g{i:03d}.jpg"  # inside the notes folder: the default allows no other
            if i in corrupt:
                corrupt_copy(photo, image)
            else:
                shutil.copyfile(photo, image)
            records.append(note_record(f"g{i:03d}", image, title, body))
        records += list(bad_lines)
        return write_notes_file(tmp_path / name, records)

    return make


@pytest.fixture
def worker_settings(tmp_path: Path):
    """Settings of an embedded library in tmp_path/home (local Qdrant, SQLite), OCR off (not under test)."""
    from app.settings import Settings

    return Settings(UNINOTE_HOME=tmp_path / "home", ocr_enabled=False)


@pytest.fixture
def library(worker_settings):
    """The process Library of the in-process (broker-less) mode, on worker_settings; eager Celery."""
    with process_library(worker_settings) as lib:
        yield lib
