"""OCR pays only where there is text (app/ocr.py): the detector runs first on a capped image, the recogniser
only on the boxes it found, all of a note's boxes in one batch; text is still read."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from app import ocr

CLOTHING = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "clothing" / "test"
NO_TEXT_PHOTOS = ("dress/06a00c0f-5f9a-410d-a7da-3881a9df3a71.jpg", "pants/84d794c2-532b-425e-aea0-6454d02ee5c1.jpg",
                  "t-shirt/01fd527c-da05-4141-861c-3aaec8070601.jpg")  # plain garments, no print, no label


def _photo(name: str) -> Image.Image:
    path = CLOTHING / name
    if not path.is_file():
        pytest.skip(f"real photo {path} absent (../shared/data/clothing)")
    return Image.open(path).convert("RGB")


def _text_image(text: str, size=(640, 200), font_size=48) -> Image.Image:
    img = Image.new("RGB", size, "white")
    ImageDraw.Draw(img).text((30, size[1] // 2 - font_size // 2), text, fill="black",
                             font=ImageFont.load_default(size=font_size))
    return img


def test_a_photo_without_text_never_reaches_the_recogniser():
    run = ocr.read_texts([_photo(NO_TEXT_PHOTOS[0])])
    assert run == ocr.OcrRun(texts=[], boxes=[0], recognised=0)


def test_an_image_with_text_still_yields_its_string():
    run = ocr.read_texts([_text_image("UniNote 2026 SALE")])
    assert run.texts == ["UniNote 2026 SALE"]
    assert run.boxes == [1] and run.recognised == 1


def test_a_big_image_is_read_through_the_capped_detector():
    big = _text_image("LIMITED OFFER", size=(4000, 1200), font_size=300)  # long side > DET_MAX_SIDE
    assert max(big.size) > ocr.DET_MAX_SIDE
    run = ocr.read_texts([big])
    assert [t.replace(" ", "") for t in run.texts] == ["LIMITEDOFFER"]  # the recogniser may drop a wide space


def test_one_recognition_batch_holds_every_box_of_the_note_in_image_order():
    images = [_text_image("FIRST LINE"), _photo(NO_TEXT_PHOTOS[1]), _text_image("SECOND 42")]
    run = ocr.read_texts(images)
    assert run.boxes == [1, 0, 1]
    assert run.recognised == sum(run.boxes) == 2
    assert [t.replace(" ", "") for t in run.texts] == ["FIRSTLINE", "SECOND42"]  # a space is the recogniser's call
    assert ocr.ocr_images(images) == run.texts


def test_a_note_of_photos_without_text_costs_no_recognition():
    run = ocr.read_texts([_photo(n) for n in NO_TEXT_PHOTOS])
    assert run.boxes == [0, 0, 0] and run.recognised == 0 and run.texts == []


def test_tiny_and_empty_inputs():
    assert ocr.read_texts([]) == ocr.OcrRun()
    assert ocr.read_texts([Image.new("RGB", (20, 20), "white")]).texts == []
    assert ocr.ocr_image(Image.new("L", (200, 100), 255)) == []  # greyscale is converted, not refused


def test_a_note_full_of_text_recognises_only_its_largest_boxes():
    img = Image.new("RGB", (900, 1400), "white")
    draw = ImageDraw.Draw(img)
    small, big = ImageFont.load_default(size=28), ImageFont.load_default(size=64)
    for i in range(ocr.MAX_BOXES + 4):  # more small lines than the cap
        draw.text((30, 20 + 48 * i), f"line {i} small print", fill="black", font=small)
    draw.text((30, 1250), "HEADLINE 88", fill="black", font=big)
    run = ocr.read_texts([img])
    assert run.boxes[0] > ocr.MAX_BOXES
    assert run.recognised == ocr.MAX_BOXES
    assert run.texts[-1] == "HEADLINE 88"  # the largest box is kept, reading order is kept


def test_one_thread_engine_reads_the_same_texts_with_its_own_one_thread_sessions():
    images = [_text_image("FIRST LINE"), _photo(NO_TEXT_PHOTOS[1]), _text_image("SECOND 42")]
    assert ocr.read_texts(images, threads=1) == ocr.read_texts(images)
    engine = ocr._get_engine(1)
    sessions = (engine.text_det.infer, engine.text_cls.infer, engine.text_rec.session)
    assert [s.session.get_session_options().intra_op_num_threads for s in sessions] == [1, 1, 1]
    with pytest.raises(ValueError, match="OCR threads must be >= 1"):
        ocr.read_texts(images, threads=0)
