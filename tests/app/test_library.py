"""The vertical slice on real photos: index, find a planted copy with its evidence, stay idempotent,
delete, and keep bad input out without losing the rest of the batch."""

from __future__ import annotations

import pytest
import skimage.data
from PIL import Image, ImageDraw, ImageFont

from app.library import Library
from app.notes import Note
from app.records import registry
from app.settings import Settings
from training.edits import apply_edit

PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "colorwheel",
          "retina"]
REVIEWS = ["这款咖啡机很好用，做出来的咖啡香味浓郁，推荐购买。", "宇航员主题的海报质量不错，颜色鲜艳，挂在墙上很好看。",
           "猫咪很喜欢这个玩具，每天都玩，性价比很高。", "火箭模型做工精细，孩子非常喜欢，包装也很结实。",
           "显微镜下的图片很清楚，适合教学使用。", "星空照片印刷精美，细节丰富，值得收藏。",
           "色环卡片颜色准确，画画的时候很有用。", "眼底照片很清楚，医生说这个设备不错。"]


def _save(img: Image.Image, path) -> str:
    img.convert("RGB").save(path, quality=92)
    return path


@pytest.fixture
def library(tmp_path):
    settings = Settings(UNINOTE_HOME=tmp_path / "home", ocr_enabled=False)
    lib = Library.open(settings)
    yield lib
    lib.close()


@pytest.fixture
def photo_notes(tmp_path) -> list[Note]:
    notes = []
    for i, (name, review) in enumerate(zip(PHOTOS, REVIEWS)):
        path = _save(Image.fromarray(getattr(skimage.data, name)()), tmp_path / f"{name}.jpg")
        notes.append(Note(note_id=f"n{i}", title=review[:8], body=review, images=[path]))
    return notes


def test_planted_copy_is_found_at_rank_1_with_image_evidence(library, photo_notes, tmp_path):
    result = library.index(photo_notes)
    assert sorted(result.indexed) == sorted(n.note_id for n in photo_notes) and not result.failed
    original = photo_notes[1]  # coffee
    edited = apply_edit("overlay_text", Image.open(original.images[0]), seed=3)
    copy = Note(note_id="q1", title="转发", body="今天分享一张图片", images=[_save(edited, tmp_path / "q1.jpg")])
    report = library.check(copy)
    assert report.matches[0].note_id == original.note_id
    assert report.verdict != "clear"
    top = report.matches[0].evidence[0]
    assert top.query_kind in ("image", "crop") and top.matched_kind in ("image", "crop")
    assert top.matched_image_index == 0
    assert report.report_id is not None


def test_image_reused_inside_another_note_is_found(library, photo_notes, tmp_path):
    library.index(photo_notes[:6])
    reused = photo_notes[3].images[0]  # rocket, inside a note with an unseen photo and other text
    other = _save(Image.fromarray(skimage.data.retina()), tmp_path / "other.jpg")
    query = Note(note_id="q2", body="完全不同的文字内容，讲的是别的事情。", images=[other, reused])
    report = library.check(query, save=False)
    assert report.matches[0].note_id == photo_notes[3].note_id
    assert any(e.query_image_index == 1 and e.matched_kind == "image" for e in report.matches[0].evidence)


def test_unrelated_note_is_clear(library, photo_notes, tmp_path):
    library.index(photo_notes[:4])
    unseen = _save(Image.fromarray(skimage.data.colorwheel()), tmp_path / "unseen.jpg")
    report = library.check(Note(note_id="q3", body="这本书的故事很感人，推荐给大家阅读。", images=[unseen]), save=False)
    assert report.verdict == "clear"


def test_reindex_is_idempotent_and_delete_removes_elements(library, photo_notes):
    library.index(photo_notes[:3])
    notes, elements = library.store.count_notes(), library.store.count_elements()
    again = library.index(photo_notes[:3])
    assert again.skipped == [n.note_id for n in photo_notes[:3]] and not again.indexed
    forced = library.index(photo_notes[:3], force=True)
    assert len(forced.indexed) == 3
    assert (library.store.count_notes(), library.store.count_elements()) == (notes, elements)
    library.delete(photo_notes[0].note_id)
    assert library.store.count_notes() == notes - 1
    assert library.store.get_note(photo_notes[0].note_id) is None
    assert library.store.count_elements() < elements
    with library.sessions() as s:
        assert registry.get_note_record(s, photo_notes[0].note_id).status == "deleted"


def test_bad_inputs_are_recorded_and_the_rest_is_indexed(library, photo_notes, tmp_path):
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 100)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(photo_notes[0].images[0].read_bytes()[:3000])
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not an image")
    bad = [Note(note_id="bad-corrupt", body="x", images=[corrupt]),
           Note(note_id="bad-truncated", body="x", images=[photo_notes[1].images[0], truncated]),
           Note(note_id="bad-text", body="x", images=[text_file]),
           Note(note_id="bad-missing", body="x", images=[tmp_path / "nope.jpg"])]
    batch = [photo_notes[0], *bad, photo_notes[2], photo_notes[2].model_copy(update={"body": "dup"})]
    result = library.index(batch)
    assert sorted(result.indexed) == sorted([photo_notes[0].note_id, photo_notes[2].note_id])
    assert set(result.failed) == {"bad-corrupt", "bad-truncated", "bad-text", "bad-missing", photo_notes[2].note_id}
    assert "images[1]" in result.failed["bad-truncated"] and "bad-truncated" in result.failed["bad-truncated"]
    assert "duplicate" in result.failed[photo_notes[2].note_id]
    assert library.store.count_notes() == 2
    for note in bad:
        assert library.store.get_note(note.note_id) is None
        with library.sessions() as s:
            rec = registry.get_note_record(s, note.note_id)
        assert rec.status == "failed" and rec.last_error


def test_database_failure_leaves_no_vectors(library, photo_notes, monkeypatch):
    """All-or-nothing: when the registry write fails after the vectors were written, they are removed."""
    library.index(photo_notes[:1])
    before = (library.store.count_notes(), library.store.count_elements())

    def refuse(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(registry, "mark_indexed", refuse)
    with pytest.raises(RuntimeError, match="database went away"):
        library.index(photo_notes[1:2])
    assert library.store.get_note(photo_notes[1].note_id) is None
    assert (library.store.count_notes(), library.store.count_elements()) == before


def test_check_stored_note_uses_stored_vectors(library, photo_notes, tmp_path):
    library.index(photo_notes[:4])
    copy_path = _save(apply_edit("crop", Image.open(photo_notes[2].images[0]), seed=1), tmp_path / "c.jpg")
    library.index([Note(note_id="copy", body="转载", images=[copy_path])])
    report = library.check_stored("copy", save=False)
    assert report.matches[0].note_id == photo_notes[2].note_id
    assert all(m.note_id != "copy" for m in report.matches)
    with pytest.raises(KeyError, match="nope"):
        library.check_stored("nope")


def test_ocr_texts_become_elements(tmp_path):
    img = Image.fromarray(skimage.data.coffee()).convert("RGB")
    ImageDraw.Draw(img).text((20, 20), "LIMITED SALE 50% OFF", fill=(255, 255, 0),
                             font=ImageFont.load_default(size=36))
    note = Note(note_id="ocr", title="咖啡", images=[_save(img, tmp_path / "ocr.jpg")])
    lib = Library.open(Settings(UNINOTE_HOME=tmp_path / "home", ocr_enabled=True))
    try:
        lib.index([note])
        texts = [e.text for e in lib.store.get_note("ocr").elements if e.kind == "ocr"]
    finally:
        lib.close()
    assert any("SALE" in t for t in texts)
