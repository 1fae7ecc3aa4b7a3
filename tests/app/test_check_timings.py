"""Check latency as a product feature: every check reports where its time went (AuditReport.timings_ms), the
report keeps it in the records, and the dashboard's report panel shows it."""

from __future__ import annotations

import pytest
import skimage.data
from PIL import Image, ImageDraw, ImageFont

from app.audit import TIMING_KEYS, AuditReport
from app.client import UniNoteClient
from app.notes import Note
from app.settings import Settings
from training.edits import apply_edit

PHOTOS = ["astronaut", "coffee", "rocket", "chelsea"]
PARTS = ("prepare", "ocr", "encode", "search", "rescore", "verify")


def _save(img: Image.Image, path) -> str:
    img.convert("RGB").save(path, quality=92)
    return str(path)


@pytest.fixture
def photo_notes(tmp_path) -> list[Note]:
    return [Note(note_id=f"n{i}", title=name, body=f"一张{name}的照片，分享给大家。",
                 images=[_save(Image.fromarray(getattr(skimage.data, name)()), tmp_path / f"{name}.jpg")])
            for i, name in enumerate(PHOTOS)]


def _assert_split(report: AuditReport) -> None:
    t = report.timings_ms
    assert tuple(t) == TIMING_KEYS
    assert all(v >= 0.0 for v in t.values())
    assert t["total"] >= sum(t[k] for k in PARTS) * 0.999  # the parts happen inside the total


def test_check_reports_where_its_time_went(tmp_path, photo_notes):
    with UniNoteClient.open(Settings(UNINOTE_HOME=tmp_path / "home", ocr_enabled=False)) as client:
        client.index(photo_notes)
        copy = apply_edit("overlay_text", Image.open(photo_notes[1].images[0]), seed=3)
        report = client.check(Note(note_id="q", title="转发", images=[_save(copy, tmp_path / "q.jpg")]))
        assert report.matches[0].note_id == "n1"
        _assert_split(report)
        t = report.timings_ms
        assert t["encode"] > 0 and t["search"] > 0 and t["rescore"] > 0 and t["prepare"] > 0
        assert t["ocr"] == 0.0  # OCR is off
        saved = client.get_report(report.report_id).report
        assert saved["timings_ms"] == pytest.approx(t)

        # the dashboard's report panel shows the split of the saved report
        from app.dashboard.report_panel import load_view, summary_markdown

        text = summary_markdown(load_view(client, report.report_id))
        assert "Time: prepare" in text and f"encode {t['encode']:.0f} ms" in text and "total" in text

        stored = client.check_stored("n1", save=False)  # nothing encoded: the stored vectors are searched
        _assert_split(stored)
        assert stored.timings_ms["encode"] == 0.0 and stored.timings_ms["ocr"] == 0.0
        assert stored.timings_ms["search"] > 0


def test_ocr_time_is_counted_when_ocr_runs(tmp_path):
    img = Image.fromarray(skimage.data.coffee()).convert("RGB")
    ImageDraw.Draw(img).text((20, 20), "LIMITED SALE 50% OFF", fill=(255, 255, 0),
                             font=ImageFont.load_default(size=36))
    path = _save(img, tmp_path / "ocr.jpg")
    with UniNoteClient.open(Settings(UNINOTE_HOME=tmp_path / "home", ocr_enabled=True)) as client:
        report = client.check(Note(note_id="q", title="咖啡", images=[path]), save=False)
        _assert_split(report)
        assert report.timings_ms["ocr"] > 0
        given = client.check(Note(note_id="q2", title="咖啡", images=[path], ocr_texts=["SALE"]), save=False)
        assert given.timings_ms["ocr"] == 0.0  # the note brought its OCR texts


def test_a_report_saved_before_timings_existed_still_loads():
    old = {"query_note_id": "q", "model_version": "v", "verdict": "clear", "matches": [], "config": {},
           "n_candidates": 0, "created_at": "2026-01-01T00:00:00+00:00", "report_id": 1, "top_score": None}
    report = AuditReport.from_dict(old)
    assert report.timings_ms == {} and report.timings_line() == ""
    assert AuditReport.from_dict(report.to_dict()) == report
