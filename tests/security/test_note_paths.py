"""Attack replay: a notes file naming server paths as its images (issue 12, item 7).

The notes folder is user input. Its records point `images` at a file outside the folder four ways: an
absolute path, `../` climbing out (the `../../etc/shadow` of the report), a symlink inside the folder to a
file outside, and a symlinked directory. The target is a real photo (a stand-in for any secret the server
can read) so that on the old code it was simply indexed. Every reader of notes files refuses them as bad
records naming the note, the field and the path, and reads the folder's own photos: `uninote ingest`,
`uninote check`, a backfill, and notes submitted for the workers (read again by id). `--allow-outside`
(a trusted local run) reads them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import skimage.data
from click.testing import CliRunner
from PIL import Image

from app.cli import main
from app.notes import load_notes
from app.records import registry
from app.settings import Settings
from worker_process import process_library


@pytest.fixture
def library(tmp_path):
    """The process Library of the in-process (broker-less) worker mode on a tmp home (as tests/workers)."""
    with process_library(Settings(UNINOTE_HOME=tmp_path / "home", ocr_enabled=False)) as lib:
        yield lib

ATTACKS = {  # note id -> how its image path leaves the folder
    "absolute": "absolute path outside the folder",
    "climb": "../ out of the folder",
    "shadow": "the report's ../../etc/shadow",
    "link": "symlink inside the folder to a file outside",
    "linkdir": "file in a symlinked directory that is outside",
}


@pytest.fixture
def attack_folder(tmp_path: Path) -> Path:
    """notes/ with one honest note and one note per ATTACKS entry; secret/ beside it holds the target photo."""
    secret_dir = tmp_path / "secret"
    secret_dir.mkdir()
    secret = secret_dir / "server_only.jpg"
    Image.fromarray(skimage.data.astronaut()).convert("RGB").save(secret)
    folder = tmp_path / "notes"
    (folder / "images").mkdir(parents=True)
    Image.fromarray(skimage.data.coffee()).convert("RGB").save(folder / "images" / "coffee.jpg")
    os.symlink(secret, folder / "images" / "innocent.jpg")
    os.symlink(secret_dir, folder / "gallery")
    depth = len(folder.resolve().parts) - 1
    images = {
        "absolute": str(secret),
        "climb": "../secret/server_only.jpg",
        "shadow": "../../etc/shadow",
        "link": "images/innocent.jpg",
        "linkdir": "gallery/server_only.jpg",
    }
    assert Path("/" + "/".join([".."] * depth), "etc/shadow").resolve() == Path("/etc/shadow")
    records = [{"note_id": "honest", "title": "Latte art", "images": ["images/coffee.jpg"]}]
    records += [{"note_id": note_id, "title": why, "images": [images[note_id]]} for note_id, why in ATTACKS.items()]
    (folder / "notes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return folder


def _assert_refusals(bad_lines: dict[str, str]) -> None:
    """bad_lines: note id -> its error text. Each names the field, the path as written and the folder."""
    assert set(bad_lines) == set(ATTACKS), bad_lines
    for note_id, error in bad_lines.items():
        assert "images[0]" in error and "outside the notes folder" in error, error
        assert "--allow-outside" in error
    assert "'../../etc/shadow'" in bad_lines["shadow"] and "'images/innocent.jpg'" in bad_lines["link"]


def test_load_notes_refuses_every_way_out_and_keeps_the_honest_note(attack_folder):
    notes, bad = load_notes(attack_folder)
    assert [n.note_id for n in notes] == ["honest"]
    _assert_refusals({b.note_id: str(b) for b in bad})
    assert all(str(b).startswith(f"line {b.line} (note '{b.note_id}')") for b in bad)
    trusted, bad = load_notes(attack_folder, allow_outside=True)
    assert not bad and len(trusted) == 1 + len(ATTACKS)


def test_ingest_and_check_refuse_and_name_the_path(attack_folder, cli_env):
    runner = CliRunner()
    out = runner.invoke(main, ["ingest", str(attack_folder)])
    assert out.exit_code == 0, out.output
    assert "indexed 1, unchanged 0, failed 5" in out.output
    refused = {line.split("(note '")[1].split("'")[0]: line for line in out.output.splitlines()
               if line.startswith("bad record:")}
    _assert_refusals(refused)

    (cli_env / "queries").mkdir()
    query = cli_env / "queries" / "query.json"  # its images must lie in queries/
    query.write_text(json.dumps({"note_id": "q", "title": "t", "images": [str(attack_folder / "gallery" / "server_only.jpg")]}))
    out = runner.invoke(main, ["check", str(query)])
    assert out.exit_code != 0 and "outside the notes folder" in out.output and "Traceback" not in out.output

    trusted = runner.invoke(main, ["ingest", "--allow-outside", str(attack_folder)])
    assert "indexed 4, unchanged 1, failed 1" in trusted.output, trusted.output  # /etc/shadow: not an image


def test_a_backfill_and_submitted_notes_refuse_them(attack_folder, library):
    from workers.backfill import run_backfill
    from workers.submit import submit_notes

    job = run_backfill(attack_folder, batch_size=4)
    assert (job.done, job.failed) == (1, len(ATTACKS)), job.describe()
    _assert_refusals({e.note_id: e.error for e in job.errors})
    assert library.store.count_notes() == 1

    submission = submit_notes(attack_folder)
    assert sorted(b.note_id for b in submission.bad) == sorted(ATTACKS) and submission.queued == ["honest"]
    with library.sessions() as s:
        for note_id in ATTACKS:
            assert registry.get_note_record(s, note_id) is None  # a bad record: never registered, never read

    trusted = run_backfill(attack_folder, batch_size=4, restart=True, allow_outside=True)
    assert trusted.allow_outside and trusted.done == 1 + len(ATTACKS) - 1, trusted.describe()  # shadow: not an image


def test_workers_reading_by_id_refuse_a_path_that_left_the_folder_after_submission(tmp_path, library):
    """A note registered while its image was inside the folder, then swapped for a symlink to the outside
    before a worker reads it again by id (index_notes_task): the worker refuses it."""
    from workers.pipeline import index_note_ids
    from workers.submit import submit_notes

    folder = tmp_path / "later"
    (folder / "images").mkdir(parents=True)
    secret = tmp_path / "server_only.jpg"
    Image.fromarray(skimage.data.rocket()).convert("RGB").save(secret)
    Image.fromarray(skimage.data.chelsea()).convert("RGB").save(folder / "images" / "cat.jpg")
    (folder / "notes.jsonl").write_text(json.dumps({"note_id": "cat", "title": "cat", "images": ["images/cat.jpg"]})
                                        + "\n", encoding="utf-8")
    assert submit_notes(folder).queued == ["cat"]  # in-process: registered and indexed at once
    (folder / "images" / "cat.jpg").unlink()
    os.symlink(secret, folder / "images" / "cat.jpg")
    result = index_note_ids(library, ["cat"], force=True)  # a redelivered message, after the swap
    assert "outside the notes folder" in result.failed["cat"] and not result.indexed
