"""OCR texts for notes that carry none: RapidOCR (PP-OCRv4 ONNX models shipped in `rapidocr-onnxruntime`,
Chinese and English), one engine per process, created on first use.
"""

from __future__ import annotations

import threading

import numpy as np
from PIL import Image

MIN_CONFIDENCE = 0.5  # RapidOCR's recognition score in [0, 1]
MIN_CHARS = 2  # single characters are mostly noise on photos

_engine = None
_lock = threading.Lock()


def _get_engine():
    global _engine
    with _lock:
        if _engine is None:
            from rapidocr_onnxruntime import RapidOCR

            _engine = RapidOCR(print_verbose=False)
        return _engine


def ocr_image(image: Image.Image) -> list[str]:
    """Text lines found in one RGB image, top to bottom, with confidence >= MIN_CONFIDENCE.

    Returns an empty list when the image has no text. Source: RapidOCR (PaddleOCR PP-OCRv4 det + rec).
    """
    engine = _get_engine()
    result, _ = engine(np.asarray(image.convert("RGB")))
    lines: list[str] = []
    for _box, text, score in result or []:
        text = str(text).strip()
        if float(score) >= MIN_CONFIDENCE and len(text) >= MIN_CHARS:
            lines.append(text)
    return lines


def ocr_images(images: list[Image.Image]) -> list[str]:
    """OCR strings of all images of a note, in image order (duplicates removed)."""
    seen: dict[str, None] = {}
    for image in images:
        for line in ocr_image(image):
            seen.setdefault(line, None)
    return list(seen)
