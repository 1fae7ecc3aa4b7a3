"""Evidence pictures and text for the dashboard: thumbnails, the query image beside the matched image with
the matched crop boxes drawn, and matched text pieces highlighted (pure functions: PIL in, PIL/HTML out).

Boxes are app.audit.Evidence boxes: (x0, y0, x1, y1) as fractions of the image width/height.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from difflib import SequenceMatcher
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

from app.audit import IMAGE_KINDS, Evidence, Match
from encoder.images import load_image
from encoder.types import InputError

THUMB_PX = 160  # longest side of a thumbnail
PANEL_PX = 360  # height of each side of an evidence picture
GAP_PX = 16
LABEL_PX = 22
COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324"]
MAX_BOXES = 4  # crop pairs drawn per image pair (the best ones)
VERIFIED_COLOUR = "#ffd400"  # the geometrically verified region (app/match_verification.py)
TOP_PX = 34  # blank band above a stacked picture (the Gradio image label sits there)


def _font(size: int):
    """Pillow's bundled scalable font at `size` px (FreeType); its bitmap font where FreeType is missing."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):
        return ImageFont.load_default()


LABEL_FONT, CAPTION_FONT = _font(13), _font(16)


def open_image(path: Path | None) -> Image.Image | None:
    """The RGB image at `path` (EXIF orientation applied, size and format checked by encoder.images), or
    None when there is no such readable image."""
    if path is None:
        return None
    try:
        return load_image(Path(path))
    except (InputError, OSError):
        return None


def thumbnail(path: Path | None, size: int = THUMB_PX) -> Image.Image:
    """A thumbnail (longest side `size` px) of the image, or a grey 'no image' tile."""
    image = open_image(path)
    if image is None:
        return placeholder(size, size, "no image")
    image = image.copy()
    image.thumbnail((size, size))
    return image


def placeholder(width: int, height: int, text: str) -> Image.Image:
    tile = Image.new("RGB", (width, height), "#d9d9d9")
    ImageDraw.Draw(tile).text((8, height // 2 - 8), text, fill="#555555", font=LABEL_FONT)
    return tile


def _pixel_box(box: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    return (round(x0 * width), round(y0 * height), max(round(x1 * width) - 1, 0), max(round(y1 * height) - 1, 0))


def draw_boxes(image: Image.Image, boxes: Sequence[tuple[Sequence[float], str, str]]) -> Image.Image:
    """A copy of `image` with each (box, colour, label) drawn: a 3 px rectangle and the label inside its
    top-left corner. Boxes are fractions of the image size."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    for box, colour, label in boxes:
        x0, y0, x1, y1 = _pixel_box(box, out.width, out.height)
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=3)
        if label:
            tw = draw.textlength(label, font=LABEL_FONT) + 6
            draw.rectangle((x0 + 3, y0 + 3, x0 + 3 + tw, y0 + 20), fill=colour)
            draw.text((x0 + 6, y0 + 4), label, fill="white", font=LABEL_FONT)
    return out


def _fit_height(image: Image.Image, height: int) -> Image.Image:
    return ImageOps.contain(image, (height * 3, height))


def side_by_side(query: Image.Image | None, matched: Image.Image | None, pairs: Sequence[Evidence],
                 titles: tuple[str, str] = ("query", "match")) -> Image.Image:
    """The query image (left) and the matched image (right), each `PANEL_PX` high, with the box of each
    evidence pair drawn on both in one colour and labelled with its kind and cosine (PDQ distance when the
    pair is a PDQ match); the geometrically verified region, when the report carries one, in VERIFIED_COLOUR
    on both, labelled with its inlier count."""
    q_boxes, m_boxes = [], []
    for i, ev in enumerate(pairs):
        colour = COLOURS[i % len(COLOURS)]
        label = f"{ev.query_kind} {ev.score:.2f}" + (f" PDQ {ev.pdq_distance}" if ev.pdq_match else "")
        if ev.query_box is not None:
            q_boxes.append((ev.query_box, colour, label))
        if ev.matched_box is not None:
            m_boxes.append((ev.matched_box, colour, f"{ev.matched_kind} {ev.score:.2f}"))
    for ev in pairs:
        if ev.verified_query_box is not None and ev.verified_matched_box is not None:
            label = f"verified {ev.inliers} inliers"
            q_boxes.append((ev.verified_query_box, VERIFIED_COLOUR, label))
            m_boxes.append((ev.verified_matched_box, VERIFIED_COLOUR, label))
            break  # one verification per image pair
    left = draw_boxes(query, q_boxes) if query is not None else placeholder(PANEL_PX, PANEL_PX, "query image not kept")
    right = (draw_boxes(matched, m_boxes) if matched is not None
             else placeholder(PANEL_PX, PANEL_PX, "image file not found"))
    left, right = _fit_height(left, PANEL_PX), _fit_height(right, PANEL_PX)
    canvas = Image.new("RGB", (left.width + GAP_PX + right.width, PANEL_PX + LABEL_PX), "white")
    canvas.paste(left, (0, LABEL_PX))
    canvas.paste(right, (left.width + GAP_PX, LABEL_PX))
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 3), titles[0], fill="black", font=LABEL_FONT)
    draw.text((left.width + GAP_PX + 4, 3), titles[1], fill="black", font=LABEL_FONT)
    return canvas


def image_pairs(match: Match) -> dict[tuple[int, int], list[Evidence]]:
    """The match's image/crop evidence grouped by (query image index, matched image index), best first,
    at most MAX_BOXES per pair (plus the whole-image pair, always kept)."""
    groups: dict[tuple[int, int], list[Evidence]] = {}
    for ev in sorted(match.evidence, key=lambda e: -e.effective_score):
        if ev.query_kind not in IMAGE_KINDS or ev.query_image_index is None or ev.matched_image_index is None:
            continue
        group = groups.setdefault((ev.query_image_index, ev.matched_image_index), [])
        if len(group) < MAX_BOXES or ev.query_kind == "image":
            group.append(ev)
    return groups


def evidence_pictures(match: Match, query_images: Sequence[Path | None],
                      matched_images: Sequence[Path | None]) -> list[tuple[Image.Image, str]]:
    """(picture, caption) per image pair of the match, best pair first; [] when no image evidence."""
    out = []
    groups = sorted(image_pairs(match).items(), key=lambda kv: -max(e.effective_score for e in kv[1]))
    for (qi, mi), pairs in groups:
        q = open_image(query_images[qi]) if qi < len(query_images) else None
        m = open_image(matched_images[mi]) if mi < len(matched_images) else None
        best = max(pairs, key=lambda e: e.effective_score)
        verified = next((e for e in pairs if e.inliers is not None), None)
        caption = (f"query image {qi} vs {match.note_id} image {mi}: best {best.query_kind} cosine {best.score:.3f}"
                   + (f", PDQ distance {best.pdq_distance}" if best.pdq_distance is not None else "")
                   + (f", verified: {verified.inliers} inliers (score {verified.verified_score:.2f})"
                      if verified is not None else ""))
        out.append((side_by_side(q, m, pairs, ("query", f"{match.note_id} · image {mi}")), caption))
    return out


def stack(pictures: Sequence[tuple[Image.Image, str]], width: int = 1100) -> Image.Image | None:
    """The (picture, caption) pairs stacked top to bottom into one image, each caption above its picture
    and each picture scaled to at most `width` px wide; None when there are none."""
    if not pictures:
        return None
    scaled = [(ImageOps.contain(p, (width, p.height)) if p.width > width else p, c) for p, c in pictures]
    height = TOP_PX + sum(p.height + LABEL_PX + GAP_PX for p, _ in scaled)
    canvas = Image.new("RGB", (max(p.width for p, _ in scaled), height), "white")
    draw = ImageDraw.Draw(canvas)
    y = TOP_PX
    for picture, caption in scaled:
        draw.text((4, y + 2), caption, fill="#333333", font=CAPTION_FONT)
        canvas.paste(picture, (0, y + LABEL_PX))
        y += picture.height + LABEL_PX + GAP_PX
    return canvas


def _worth_marking(run: str, min_len: int) -> bool:
    """A common run is marked when it has >= min_len characters, or >= 2 CJK characters (a CJK word)."""
    return len(run) >= min_len or (len(run) >= 2 and all(ord(c) >= 0x2E80 for c in run))


def highlight_common(a: str, b: str, min_len: int = 4) -> tuple[str, str]:
    """HTML of `a` and `b` (escaped) with their common runs in <mark> (difflib.SequenceMatcher blocks worth
    marking: >= min_len characters, or >= 2 CJK characters)."""
    blocks = [blk for blk in SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks()
              if blk.size and _worth_marking(a[blk.a:blk.a + blk.size], min_len)]

    def render(text: str, spans: list[tuple[int, int]]) -> str:
        out, pos = [], 0
        for start, size in spans:
            out.append(html.escape(text[pos:start]))
            out.append(f"<mark>{html.escape(text[start:start + size])}</mark>")
            pos = start + size
        out.append(html.escape(text[pos:]))
        return "".join(out)

    return render(a, [(blk.a, blk.size) for blk in blocks]), render(b, [(blk.b, blk.size) for blk in blocks])


def text_evidence_html(match: Match) -> str:
    """An HTML table: each query text piece (title, body piece, OCR) beside its best matched piece, common
    runs highlighted, with the cosine. Text evidence is shown, not scored (app/audit.py)."""
    rows = []
    for ev in match.evidence:
        if ev.query_kind in IMAGE_KINDS or not (ev.query_text or ev.matched_text):
            continue
        q, m = highlight_common(ev.query_text or "", ev.matched_text or "")
        rows.append(f"<tr><td>{html.escape(ev.query_kind)}[{ev.query_index}]</td><td>{q}</td>"
                    f"<td>{html.escape(ev.matched_kind)}[{ev.matched_index}]</td><td>{m}</td>"
                    f"<td>{ev.score:.3f}</td></tr>")
    if not rows:
        return "<p><em>No text evidence.</em></p>"
    head = "<tr><th>query piece</th><th>text</th><th>matched piece</th><th>text</th><th>cosine</th></tr>"
    return f'<table class="uninote-text-evidence">{head}{"".join(rows)}</table>'
