"""UniNoteClient over real local services: the embedded default (local Qdrant folder + SQLite) and the
records in PostgreSQL (DATABASE_URL), the shipped compact encoder, real photos (skimage.data, and a
../shared/data grocery photo when present) with a DISC21-style planted copy (AugLy crop + overlay text +
JPEG re-encode)."""

from __future__ import annotations

import uuid
from pathlib import Path

import augly.image as imaugs
import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from app.audit import CLEAR
from app.client import UniNoteClient
from app.library import IndexResult
from app.moderation import PermissionDeniedError
from app.notes import Note, write_notes
from app.records.audit_log import Action
from app.records.errors import RecordNotFoundError
from app.records.types import Decision, NoteStatus
from app.settings import Settings
from app.stored_notes import NoteNotStoredError

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
GROCERY = DATA / "grocery"
PHOTOS = {  # skimage photo -> (title, body)
    "astronaut": ("Meeting an astronaut", "Portrait of an astronaut in a white suit next to the flag."),
    "coffee": ("Latte art this morning", "A cup of coffee with a leaf drawn in the milk foam."),
    "rocket": ("Launch day", "The rocket on the pad, hours before the launch."),
    "chelsea": ("My cat Chelsea", "Chelsea the tabby cat looking at the camera."),
}


def disc_copy(path: Path, out: Path) -> Path:
    """A DISC21-style copy of the image at `path`: borders cropped, text overlaid, JPEG quality 30."""
    with Image.open(path) as im:
        image = im.convert("RGB")
    cropped = imaugs.crop(image, x1=0.08, y1=0.05, x2=0.95, y2=0.92)
    imaugs.encoding_quality(imaugs.overlay_text(cropped), quality=30).convert("RGB").save(out)
    return out


def library_notes(folder: Path) -> list[Note]:
    """Photo notes (skimage; one grocery product photo when ../shared/data is there) and a text-only note."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    notes = []
    for name, (title, body) in PHOTOS.items():
        path = folder / "images" / f"{name}.jpg"
        Image.fromarray(getattr(skimage.data, name)()).convert("RGB").save(path, quality=92)
        notes.append(Note(note_id=name, title=title, body=body, images=[path], author="tester"))
    if GROCERY.is_dir():
        line = (GROCERY / "dataset" / "train.txt").read_text().splitlines()[0]
        notes.append(Note(note_id="grocery-apple", title="Apples from the market", body="Fresh apples.",
                          images=[GROCERY / "dataset" / line.split(",")[0].strip()]))
    notes.append(Note(note_id="text-review", title="商品很好", body="商品很好，物流也很快，包装完好，下次还会再来购买。"))
    write_notes(notes, folder)
    return notes


def _postgres_url(server_url: str) -> str:
    """A fresh database on the test PostgreSQL server for this module (dropped by the caller)."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"uninote_client_{uuid.uuid4().hex[:10]}"
    admin = make_url(server_url).set(drivername="postgresql", database="postgres")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def _drop_postgres(url: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    admin = parsed.set(drivername="postgresql", database="postgres")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def world(request, tmp_path_factory):
    """(client, library notes folder, work folder): the library indexed once per backend."""
    torch.set_num_threads(2)
    tmp = tmp_path_factory.mktemp(f"client-{request.param}")
    database_url = None
    if request.param == "postgresql":
        database_url = _postgres_url(request.getfixturevalue("postgres_server_url"))
    settings = Settings(UNINOTE_HOME=tmp / "home", database_url=database_url, ocr_enabled=False, prefetch_limit=50)
    folder = tmp / "library"
    notes = library_notes(folder)
    client = UniNoteClient.open(settings)
    result = client.index(notes, source=str(folder))
    assert sorted(result.indexed) == sorted(n.note_id for n in notes), result.failed
    with client.library.sessions() as s:  # an admin and a moderator for the threshold tests
        from app.records import users

        users.add_user(s, "admin1", "admin-password", "admin")
        users.add_user(s, "mod1", "moderator-password", "moderator")
        s.commit()
    yield client, folder, tmp
    client.close()
    if database_url:
        _drop_postgres(database_url)


@pytest.fixture(scope="module")
def planted(world) -> dict:
    """A planted copy of `astronaut` and an unrelated photo, checked once with check_many."""
    client, folder, tmp = world
    copy = disc_copy(folder / "images" / "astronaut.jpg", tmp / "copy.jpg")
    other = tmp / "unrelated.jpg"
    Image.fromarray(skimage.data.immunohistochemistry()).convert("RGB").save(other)
    copy_note = {"note_id": "q-copy", "title": "Look who I met", "body": "", "images": [str(copy)]}
    clear_note = Note(note_id="q-clear", title="Tissue under the microscope", images=[other])
    reports = client.check_many([copy_note, clear_note])
    return {"copy": reports[0], "clear": reports[1], "copy_path": copy}


def test_index_skips_unchanged_notes_and_refuses_invalid_records(world):
    client, folder, _ = world
    unchanged = Note(note_id="astronaut", title=PHOTOS["astronaut"][0], body=PHOTOS["astronaut"][1],
                     images=[folder / "images" / "astronaut.jpg"], author="tester")
    result = client.index([unchanged], source=str(folder))
    assert isinstance(result, IndexResult)
    assert result.skipped == ["astronaut"] and result.indexed == []
    with pytest.raises(ValueError, match="note_id"):
        client.index([{"note_id": "bad id with spaces", "title": "x"}])


def test_index_reports_a_note_with_a_missing_image_and_goes_on(world):
    client, _, tmp = world
    result = client.index([{"note_id": "broken", "title": "x", "images": [str(tmp / "missing.jpg")]},
                           {"note_id": "text-2", "title": "只是文字", "body": "没有图片的笔记。"}])
    assert "images[0]" in result.failed["broken"] and result.indexed == ["text-2"]


def test_check_finds_the_planted_copy_with_evidence(world, planted):
    client, _, _ = world
    report = planted["copy"]
    assert report.report_id is not None
    assert report.matches[0].note_id == "astronaut"
    assert report.verdict != CLEAR
    top = report.matches[0]
    assert any(s.startswith("prefetch global_64") for s in top.stages) or "element" in top.stages
    image_ev = [e for e in top.evidence if e.query_kind in ("image", "crop")]
    assert image_ev and image_ev[0].matched_image_index == 0 and image_ev[0].matched_box is not None
    saved = client.get_report(report.report_id)
    assert saved.query_note_id == "q-copy" and saved.matches[0].matched_note_id == "astronaut"


def test_check_many_keeps_order_and_an_unrelated_photo_is_clear(planted):
    assert planted["copy"].query_note_id == "q-copy"
    assert planted["clear"].query_note_id == "q-clear"
    assert planted["clear"].verdict == CLEAR


def test_get_matches_and_record_decision_go_to_the_audit_log(world, planted):
    client, _, _ = world
    matches = client.get_matches("astronaut")
    mine = [m for m in matches if m.report_id == planted["copy"].report_id]
    assert mine and mine[0].query_note_id == "q-copy" and mine[0].decision is None
    record = client.record_decision(mine[0].id, "duplicate", moderator="mod1", comment="same photo, cropped")
    assert record.decision == Decision.DUPLICATE and record.moderator == "mod1"
    assert [m.decision for m in client.get_matches("astronaut") if m.id == mine[0].id] == [Decision.DUPLICATE]
    entry = client.audit_log(action=Action.DECISION)[0]
    assert (entry.actor, entry.target) == ("mod1", f"match:{mine[0].id}")
    assert entry.details["decision"] == "duplicate" and entry.details["comment"] == "same photo, cropped"
    with pytest.raises(RecordNotFoundError):
        client.record_decision(10**9, "duplicate", moderator="mod1")
    with pytest.raises(ValueError, match="unknown decision"):
        client.record_decision(mine[0].id, "maybe", moderator="mod1")


def test_thresholds_are_admin_only_and_apply_to_checks(world, planted):
    client, _, _ = world
    with pytest.raises(PermissionDeniedError):
        client.set_thresholds("mod1", 0.99, 0.98)
    with pytest.raises(ValueError, match="must not exceed"):
        client.set_thresholds("admin1", 0.5, 0.9)
    before = client.thresholds()
    assert before.source == "settings"
    try:
        changed = client.set_thresholds("admin1", 0.999, 0.998)
        assert changed.source.startswith("audit_log:")
        again = client.check({"note_id": "q-copy-2", "images": [str(planted["copy_path"])]}, save=False)
        assert again.verdict == CLEAR and again.matches[0].note_id == "astronaut"
        assert client.audit_log(action=Action.THRESHOLDS)[0].details["previous"]["duplicate"] == before.duplicate
    finally:
        client.set_thresholds("admin1", before.duplicate, before.infringement)
    report = client.threshold_report()
    assert report.n_decisions >= 1
    assert all(0.0 <= r.precision <= 1.0 for r in report.infringement)


def test_note_lists_elements_and_images(world):
    client, folder, _ = world
    details = client.note("astronaut")
    assert details.stored and details.record.status == NoteStatus.INDEXED
    kinds = {e.kind.value for e in details.elements}
    assert {"image", "crop", "title", "body"} <= kinds
    assert details.images == [folder / "images" / "astronaut.jpg"]
    page = client.list_notes(offset=0, limit=2)
    assert len(page.notes) == 2 and page.total >= 5 and page.has_next


def test_check_stored_and_delete(world, planted):
    client, _, _ = world
    client.index([{"note_id": "stored-copy", "title": "Look who I met", "images": [str(planted["copy_path"])]}])
    report = client.check_stored("stored-copy")
    assert report.query_note_id == "stored-copy" and report.matches[0].note_id == "astronaut"
    assert all(m.note_id != "stored-copy" for m in report.matches)
    client.delete("stored-copy")
    assert not client.note("stored-copy").stored
    assert client.note("stored-copy").record.status == NoteStatus.DELETED
    with pytest.raises(NoteNotStoredError):
        client.check_stored("stored-copy")
    with pytest.raises(RecordNotFoundError):
        client.delete("never-indexed")


def test_check_refuses_a_bad_record(world):
    client, _, _ = world
    with pytest.raises(ValueError, match="empty note"):
        client.check({"note_id": "empty"})
    assert np.isfinite(client.thresholds().duplicate)
