"""OCR texts for notes that carry none: RapidOCR (PP-OCRv4 ONNX models shipped in `rapidocr-onnxruntime`,
Chinese and English), one engine per process, created on first use.
"""

from __future__ import annotations

import threading

import numpy as np
from PIL import Image

from encoder.threads import session_options

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
            _resize_sessions(_engine)
        return _engine


def _resize_sessions(engine) -> None:
    """Re-open RapidOCR's three ONNX sessions with encoder.threads.session_options() (ENCODER_THREADS intra-op
    threads, one inter-op thread, no spinning): RapidOCR's own options leave ONNX Runtime's default pools."""
    import onnxruntime as ort
    from rapidocr_onnxruntime.main import DEFAULT_CFG_PATH
    from rapidocr_onnxruntime.utils import read_yaml, update_model_path

    paths = update_model_path(read_yaml(DEFAULT_CFG_PATH))
    for part, section in ((engine.text_det.infer, "Det"), (engine.text_cls.infer, "Cls"), (engine.text_rec.session, "Rec")):
        part.session = ort.InferenceSession(paths[section]["model_path"], sess_options=session_options(),
                                            providers=["CPUExecutionProvider"])


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
