"""The `uninote` command line on the embedded default (local Qdrant, SQLite, in-process encoder)."""

from __future__ import annotations

import json

import pytest
import skimage.data
from click.testing import CliRunner
from PIL import Image

from app.cli import main
from training.edits import apply_edit


def _notes_folder(root):
    (root / "images").mkdir(parents=True)
    lines = []
    for i, name in enumerate(["astronaut", "coffee", "rocket", "chelsea"]):
        Image.fromarray(getattr(skimage.data, name)()).convert("RGB").save(root / "images" / f"{name}.jpg")
        lines.append(json.dumps({"note_id": f"n{i}", "title": name, "body": f"一张{name}的照片，分享给大家。",
                                 "images": [f"images/{name}.jpg"]}, ensure_ascii=False))
    lines.append(json.dumps({"note_id": "bad", "title": 3}))
    (root / "notes.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_ingest_check_and_delete(cli_env):
    folder = _notes_folder(cli_env / "notes")
    runner = CliRunner()
    out = runner.invoke(main, ["ingest", str(folder)])
    assert out.exit_code == 0, out.output
    assert "indexed 4, unchanged 0, failed 1" in out.output
    assert "line 5" in out.output and "title" in out.output
    again = runner.invoke(main, ["ingest", str(folder)])
    assert "indexed 0, unchanged 4" in again.output

    copy = apply_edit("overlay_emoji", Image.open(folder / "images" / "rocket.jpg"), seed=5)
    copy.save(cli_env / "copy.jpg")
    (cli_env / "query.json").write_text(json.dumps({"note_id": "q", "title": "转发", "images": ["copy.jpg"]}))
    out = runner.invoke(main, ["check", str(cli_env / "query.json"), "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert report["matches"][0]["note_id"] == "n2" and report["verdict"] != "clear"
    assert list(report["timings_ms"]) == ["prepare", "ocr", "encode", "search", "rescore", "verify", "total"]
    assert report["timings_ms"]["encode"] > 0 and report["timings_ms"]["search"] > 0
    verified = [e for e in report["matches"][0]["evidence"] if e["verified_score"]]
    assert verified and len(verified[0]["verified_query_box"]) == 4  # the matched region, in both images
    out = runner.invoke(main, ["check", str(cli_env / "query.json")])
    assert out.exit_code == 0, out.output
    assert "verified: query image 0 [" in out.output and "inliers" in out.output

    out = runner.invoke(main, ["check", "n2"])  # a stored note against the rest of the library
    assert out.exit_code == 0, out.output
    assert "verdict:" in out.output and "n2 " not in out.output
    assert "time: prepare" in out.output and "search" in out.output and "ms · total" in out.output

    assert runner.invoke(main, ["delete", "n2"]).exit_code == 0
    out = runner.invoke(main, ["check", "n2"])
    assert out.exit_code != 0 and "not in the library" in out.output


def test_ingest_reports_a_line_that_is_not_utf8_and_indexes_the_rest(cli_env):
    folder = _notes_folder(cli_env / "notes")
    lines = (folder / "notes.jsonl").read_bytes().splitlines(keepends=True)
    lines.insert(2, b'{"note_id": "latin1", "title": "caf\xe9 au lait"}\n')  # one Latin-1 byte on line 3
    (folder / "notes.jsonl").write_bytes(b"".join(lines))
    out = CliRunner().invoke(main, ["ingest", str(folder)])
    assert out.exit_code == 0, out.output
    assert "bad record: line 3: not UTF-8: byte 0xe9" in out.output
    assert "indexed 4, unchanged 0, failed 2" in out.output  # the Latin-1 line and the bad title of line 6


def test_check_names_a_bad_note_file(cli_env):
    (cli_env / "q.json").write_text(json.dumps({"note_id": "q"}))
    out = CliRunner().invoke(main, ["check", str(cli_env / "q.json")])
    assert out.exit_code != 0 and "empty note" in out.output


@pytest.mark.slow
def test_demo_prints_the_table(cli_env):
    out = CliRunner().invoke(main, ["demo", "--text-notes", "20"])
    assert out.exit_code == 0, out.output
    rows = {line.split()[0]: line.split()[1:] for line in out.output.splitlines() if line and line[0].isalpha()}
    for kind in ("crop", "overlay_text", "re-encode", "reused-image", "reworded-text", "clear"):
        assert kind in rows
    queries, found = int(rows["all"][1]), int(rows["all"][2])  # "all copies  N  found@1  flagged"
    assert found >= 0.7 * queries  # the shipped encoder finds most planted copies at rank 1
    precision = float(out.output.split("threshold precision ")[1].split()[0])
    assert precision >= 0.8
