"""A `uninote ingest` SIGKILLed in the middle of a note's write (issue 12, item 10).

A real `uninote ingest` process (the CLI's own entry point) is killed with SIGKILL at the worst point of one
note's write: after its vectors are stored (Edge writes the note point and its element points in one
operation) and before its registry commit ("note"). The kill is placed by a hook in that process, which
calls os.kill(SIGKILL) on itself right after the store call returns, so nothing of the process runs after
it (no except, no finally). Then, in this process:
- a reader that has not swept (a Library built by hand) never shows the killed note: not in a check of a
  copy of its image, not in its details, not as a look-back;
- `Library.open` sweeps: the store holds no vector of it (the raw element search finds none), its registry
  row says the write was interrupted;
- the next `uninote ingest` indexes it and the notes never written, and a check finds it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from click.testing import CliRunner
from PIL import Image

from app.cli import main
from app.library import INTERRUPTED, Library
from app.notes import Note
from app.preparation import prepare_note
from app.records import registry
from app.records.db import make_engine, session_factory
from app.records.types import NoteStatus
from app.settings import Settings
from app.store import VectorStore, open_store
from app.stored_notes import note_details
from encoder.loading import load_encoder
from training.edits import apply_edit

REPO = Path(__file__).resolve().parents[2]
TARGET = "n2"  # the third note of the file: two notes are complete before it, one is never written
INGEST_TIMEOUT_S = 600  # imports and the encoder on a busy 2-core machine

# Runs `uninote ingest FOLDER` with a hook that SIGKILLs the process right after the store call of STAGE for
# note TARGET returns: "note", the whole EdgeStore.upsert_note (vectors stored, registry not yet committed).
# (Edge writes a note point and its element points in one operation, so there is no state between them; the
# SIGKILL inside that operation is tests/app/test_store_faults.py's.)
KILLING_INGEST = textwrap.dedent("""
    import os, signal, sys
    folder, target, stage = sys.argv[1:4]

    def kill_after(owner, name, hit):
        original = getattr(owner, name)
        def wrapped(*args, **kwargs):
            out = original(*args, **kwargs)
            if hit(*args, **kwargs):
                sys.stdout.write(f"SIGKILL after {stage} of {target}\\n")
                sys.stdout.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            return out
        setattr(owner, name, wrapped)

    from app.store import EdgeStore
    kill_after(EdgeStore, "upsert_note", lambda self, encoded, *a, **kw: encoded.note_id == target)
    from app.cli import main
    main(["ingest", folder], prog_name="uninote")
""")


def _notes_folder(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    lines = []
    for i, name in enumerate(["astronaut", "coffee", "rocket", "chelsea"]):
        Image.fromarray(getattr(skimage.data, name)()).convert("RGB").save(root / "images" / f"{name}.jpg")
        lines.append(json.dumps({"note_id": f"n{i}", "title": name, "body": f"一张{name}的照片，分享给大家。",
                                 "images": [f"images/{name}.jpg"]}, ensure_ascii=False))
    (root / "notes.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def _killed_ingest(folder: Path, home: Path, stage: str) -> str:
    env = dict(os.environ) | {"UNINOTE_HOME": str(home), "OCR_ENABLED": "false", "OMP_NUM_THREADS": "2",
                              "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", KILLING_INGEST, str(folder), TARGET, stage], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=INGEST_TIMEOUT_S)
    out = proc.stdout + proc.stderr
    assert proc.returncode == -signal.SIGKILL, f"the ingest was not killed (exit {proc.returncode}):\n{out[-3000:]}"
    assert f"SIGKILL after {stage} of {TARGET}" in out, out[-3000:]
    return out


def _query(cli_env: Path, folder: Path) -> Note:
    copy = apply_edit("overlay_emoji", Image.open(folder / "images" / "rocket.jpg"), seed=5)
    copy.save(cli_env / "copy.jpg")
    return Note(note_id="q", title="转发", images=[cli_env / "copy.jpg"])


def _element_hits_of(store: VectorStore, vectors: np.ndarray, note_id: str) -> int:
    return sum(h.note_id == note_id for hits in store.search_elements(vectors, 50) for h in hits)


@pytest.mark.parametrize("stage", ["note"])
def test_a_note_killed_mid_write_is_never_shown_and_is_swept_on_open(cli_env, stage):
    folder = _notes_folder(cli_env / "notes")
    _killed_ingest(folder, cli_env / "home", stage)
    settings = Settings(UNINOTE_HOME=cli_env / "home", ocr_enabled=False)
    encoder = load_encoder(settings)
    query = _query(cli_env, folder)
    target = prepare_note(Note(note_id=TARGET, title="rocket", images=[folder / "images" / "rocket.jpg"]),
                          ocr_enabled=False)
    # (Q, D): the killed note's own elements, which find its stored element points
    target_vectors = np.stack([e.vector for e in encoder.encode([target.inputs])[0].locals]).astype(np.float32)

    # A reader before any sweep: the vectors of the killed write are in the store, the reader shows none.
    raw = Library(settings, encoder, open_store(settings),
                  session_factory(make_engine(settings.resolved_database_url)))
    try:
        assert _element_hits_of(raw.store, target_vectors, TARGET) > 0  # the write really was cut in half
        report = raw.check(query, save=False)
        assert TARGET not in [m.note_id for m in report.matches]
        assert (raw.store.get_note(TARGET) is not None) == (stage == "note")  # the note point: after its write
        with pytest.raises(KeyError):
            raw.check_stored(TARGET, save=False)
        assert not note_details(raw, TARGET).stored
    finally:
        raw.close()

    # Opening sweeps: nothing of the killed note is left in the store; its row says what happened.
    library = Library.open(settings, encoder=encoder)
    try:
        assert _element_hits_of(library.store, target_vectors, TARGET) == 0
        assert library.store.get_note(TARGET) is None
        assert library.store.count_notes() == 2  # n0 and n1, written before the kill
        assert library.store.count_elements() == sum(len(library.store.get_note(n).elements) for n in ("n0", "n1"))
        with library.sessions() as s:
            rec = registry.get_note_record(s, TARGET)
        assert rec is not None and rec.status == NoteStatus.FAILED and rec.last_error == INTERRUPTED
    finally:
        library.close()

    out = CliRunner().invoke(main, ["ingest", str(folder)])
    assert out.exit_code == 0, out.output
    assert "indexed 2, unchanged 2, failed 0" in out.output  # the killed note and the one never reached
    library = Library.open(settings, encoder=encoder)
    try:
        assert library.check(query, save=False).matches[0].note_id == TARGET
        assert library.store.count_notes() == 4
    finally:
        library.close()
