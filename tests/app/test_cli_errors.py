"""The `uninote` command (a real process) when a service is down or the input is wrong (issue 12, item 12):
one line naming the service, its URL with the password masked and `uninote healthcheck`, exit status 1,
no traceback unless `--debug`; nothing left half-done (a backfill whose batch could not be queued is
failed with the reason, not left running)."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import skimage.data
from PIL import Image

SECRET = "s3cret-pw"


def dead_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A notes folder (two real photos) and a query note beside an empty UNINOTE_HOME."""
    folder = tmp_path / "notes"
    (folder / "images").mkdir(parents=True)
    lines = []
    for name in ("coffee", "rocket"):
        Image.fromarray(getattr(skimage.data, name)()).convert("RGB").save(folder / "images" / f"{name}.jpg")
        lines.append(json.dumps({"note_id": name, "title": name, "images": [f"images/{name}.jpg"]}))
    (folder / "notes.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "query.json").write_text(json.dumps({"note_id": "q", "title": "rocket", "body": "launch day"}))
    return tmp_path


def uninote(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if k not in {"DATABASE_URL", "QDRANT_URL", "QDRANT_PATH", "ENCODER_URL", "CHECKPOINT", "CELERY_BROKER_URL",
                          "CELERY_RESULT_BACKEND", "MIGRATION_DATABASE_URL", "ENVIRONMENT"}}
    clean |= {"UNINOTE_HOME": str(home / "home"), "OCR_ENABLED": "false", "OMP_NUM_THREADS": "2", **env}
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=home, env=clean, capture_output=True,
                          text=True, timeout=600)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("WARNING")]
    assert len(lines) == 1, result.stderr
    assert SECRET not in result.stderr + result.stdout
    return lines[0]


def test_an_unreachable_database(home):
    port = dead_port()
    url = f"postgresql+psycopg://uninote:{SECRET}@127.0.0.1:{port}/uninote"
    line = one_line_error(uninote(home, "ingest", "notes", DATABASE_URL=url))
    assert line.startswith(f"error: database at postgresql+psycopg://uninote:***@127.0.0.1:{port}/uninote is "
                           "unreachable: "), line
    assert line.endswith("run `uninote healthcheck` to check every service")
    debug = uninote(home, "--debug", "ingest", "notes", DATABASE_URL=url)
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "DatabaseUnreachableError" in debug.stderr


def test_an_unreachable_qdrant_server(home):
    port = dead_port()
    line = one_line_error(uninote(home, "check", "query.json", QDRANT_URL=f"http://127.0.0.1:{port}"))
    assert line.startswith(f"error: Qdrant at http://127.0.0.1:{port} is unreachable: "), line


def test_an_unreachable_encoder_server(home):
    port = dead_port()
    line = one_line_error(uninote(home, "ingest", "notes", ENCODER_URL=f"http://127.0.0.1:{port}"))
    assert line.startswith(f"error: encoder at http://127.0.0.1:{port} is unreachable: "), line


def test_an_unreachable_broker_fails_the_backfill_instead_of_leaving_it_running(home):
    port = dead_port()
    broker = f"redis://:{SECRET}@127.0.0.1:{port}/0"
    line = one_line_error(uninote(home, "backfill", "notes", CELERY_BROKER_URL=broker))
    assert line.startswith(f"error: broker at redis://:***@127.0.0.1:{port}/0 is unreachable: "), line
    with sqlite3.connect(home / "home" / "uninote.db") as db:
        status, last_error = db.execute("SELECT status, last_error FROM backfills").fetchone()
    assert status == "failed" and "could not queue the batch" in last_error and SECRET not in last_error
    listed = uninote(home, "backfill", "--status")
    assert listed.returncode == 0 and "backfill 1 failed: 0/2 lines" in listed.stdout, listed.stdout + listed.stderr


def test_check_of_a_file_that_is_not_utf8_json_and_delete_of_an_unknown_id(home):
    (home / "latin1.json").write_bytes(b'{"note_id": "q", "title": "caf\xe9"}')
    result = uninote(home, "check", "latin1.json")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "Error: latin1.json: not UTF-8: byte 0xe9 at offset 30 (invalid continuation byte)"
    (home / "broken.json").write_text('{"note_id": "q",')
    result = uninote(home, "check", "broken.json")
    assert result.returncode == 1 and result.stderr.strip().startswith("Error: broken.json: not JSON")

    result = uninote(home, "delete", "ghost")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "Error: no note 'ghost' in the library (nothing deleted)"
