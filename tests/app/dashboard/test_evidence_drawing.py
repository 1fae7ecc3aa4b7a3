"""app/dashboard/evidence.py on a real photo (skimage.data.astronaut): boxes land where the fractions say,
pairs are drawn side by side, text highlights are escaped."""

from __future__ import annotations

import numpy as np
import skimage.data
from PIL import Image

from app.audit import Evidence, Match
from app.dashboard.evidence import (PANEL_PX, draw_boxes, evidence_pictures, highlight_common, image_pairs,
                                    side_by_side, stack, text_evidence_html, thumbnail)


def photo() -> Image.Image:
    return Image.fromarray(skimage.data.astronaut()).convert("RGB")  # 512 x 512


def crop(qi: int, mi: int, box, score: float, kind: str = "crop") -> Evidence:
    return Evidence(kind, 0, kind, 0, score, score, query_image_index=qi, query_box=box,
                    matched_image_index=mi, matched_box=box)


def test_draw_boxes_outlines_the_box_fraction():
    out = np.asarray(draw_boxes(photo(), [((0.25, 0.5, 0.75, 1.0), "#ff0000", "")]))  # (512, 512, 3)
    assert tuple(out[300, 128]) == (255, 0, 0)  # left edge, x = 0.25 * 512
    assert tuple(out[256, 300]) == (255, 0, 0)  # top edge, y = 0.5 * 512
    assert tuple(out[100, 100]) == tuple(np.asarray(photo())[100, 100])  # outside: untouched


def test_side_by_side_and_stack(tmp_path):
    pair = side_by_side(photo(), photo().resize((256, 128)), [crop(0, 0, (0.0, 0.0, 0.6, 0.6), 0.93)])
    assert pair.height > PANEL_PX and pair.width > PANEL_PX + 2 * PANEL_PX  # 1:1 beside 2:1
    missing = side_by_side(photo(), None, [])
    assert missing.width > PANEL_PX
    assert stack([]) is None
    assert stack([(pair, "a"), (missing, "b")]).height > pair.height + missing.height
    path = tmp_path / "a.jpg"
    photo().save(path)
    assert max(thumbnail(path).size) == 160 and thumbnail(tmp_path / "missing.jpg").size == (160, 160)


def test_image_pairs_and_pictures(tmp_path):
    path = tmp_path / "a.jpg"
    photo().save(path)
    match = Match("n1", "t", 0.9, "duplicate", 0.9, 0.9, 0.9, ["element"], [
        crop(0, 0, (0, 0, 1, 1), 0.95, "image"), crop(0, 0, (0, 0, 0.6, 0.6), 0.9), crop(1, 0, (0.4, 0.4, 1, 1), 0.8),
        Evidence("title", 0, "title", 0, 0.99, 0.99, query_text="a", matched_text="a")])
    groups = image_pairs(match)
    assert sorted(groups) == [(0, 0), (1, 0)] and len(groups[(0, 0)]) == 2
    pictures = evidence_pictures(match, [path, None], [path])
    assert [c.split(":")[0] for _, c in pictures] == ["query image 0 vs n1 image 0", "query image 1 vs n1 image 0"]


def test_text_highlight_is_escaped():
    a, b = highlight_common("<b>商品很好</b>", "商品很好，物流快")
    assert a == "&lt;b&gt;<mark>商品很好</mark>&lt;/b&gt;" and b.startswith("<mark>商品很好</mark>")
    assert highlight_common("Look who I met", "Meeting")[0] == "Look who I met"  # 'et' is not worth marking
    assert highlight_common("an astronaut today", "astronaut photo")[1] == "<mark>astronaut </mark>photo"
    match = Match("n1", "t", 0.5, "clear", 0.5, 0.5, 0.0, [], [
        Evidence("body", 0, "body", 2, 0.91, 0.91, query_text="x<script>", matched_text="x<script>")])
    html = text_evidence_html(match)
    assert "<script>" not in html and "body[2]" in html and "0.910" in html


def test_the_verified_region_the_report_carries_is_drawn_on_both_images(tmp_path):
    from app.dashboard.evidence import VERIFIED_COLOUR

    path = tmp_path / "a.jpg"
    photo().save(path)
    ev = crop(0, 0, None, 0.8, "image")
    ev.inliers, ev.verified_score = 60, 0.7
    ev.verified_query_box, ev.verified_matched_box = (0.25, 0.25, 0.75, 0.75), (0.0, 0.0, 0.5, 0.5)
    match = Match("n1", "t", 0.9, "duplicate", 0.9, 0.9, 0.9, ["element"], [ev])
    [(picture, caption)] = evidence_pictures(match, [path], [path])
    assert "verified: 60 inliers" in caption
    rgb = np.asarray(picture)  # (H, W, 3): query panel (PANEL_PX square) then the match panel
    yellow = np.all(rgb == np.array(Image.new("RGB", (1, 1), VERIFIED_COLOUR).getpixel((0, 0))), axis=-1)
    cols = np.nonzero(yellow.any(axis=0))[0]
    assert cols.min() < PANEL_PX < cols.max()  # boxes on both sides
