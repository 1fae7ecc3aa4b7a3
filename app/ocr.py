"""OCR texts for notes that carry none: RapidOCR (PP-OCRv4 ONNX models shipped in `rapidocr-onnxruntime`,
Chinese and English), one engine per process, created on first use.

OCR pays only where there is text (issue 13). `read_texts` runs RapidOCR's parts itself instead of its
all-in-one `RapidOCR.__call__` (which upscales every image to a 736-pixel *short* side before detecting):
1. the DB text detector on each image resized so its *long* side is at most DET_MAX_SIDE; a smaller image is
   enlarged to DET_SMALL_LONG_SIDE (480: 0.56x the pixels of 640; the boxes it misses are the smallest ones,
   which MAX_BOXES drops on a text-rich note anyway);
2. no detected box in any image of the note -> done: the angle classifier and the recogniser never run;
3. the boxes' crops, cut from the full-resolution image, of all images of the note go through the
   180° classifier and the CRNN recogniser in one batched call (REC_BATCH crops per ONNX run); a note
   with more than MAX_BOXES boxes has only its MAX_BOXES largest recognised (in reading order). Each batch is
   padded to its own widest crop (REC_MIN_WIDTH), not to PaddleOCR's 320-pixel minimum width: a text line of
   aspect 2 is 96 pixels wide at height 48, so the fixed 320 made the recogniser ~3x the work.
Images go to the models as BGR (RapidOCR's models are trained on cv2-decoded images).
Threads: `read_texts(images, threads=n)` runs on an engine whose ONNX sessions have n intra-op threads
(encoder.threads.session_options; default ENCODER_THREADS), one engine per n, created on first use. One note
at a time (check) wants all of them; ingestion runs several notes side by side in worker threads
(app.preparation.prepared_ahead), each on one thread: on 2 cores a 2-thread detector costs ~25% more CPU
than a 1-thread one (the threads meet at every one of its many small operators). The outputs are the same
bit for bit whatever the count (ONNX Runtime splits work, not sums, across its threads).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from encoder.threads import current_threads, session_options

MIN_CONFIDENCE = 0.5  # RapidOCR's recognition score in [0, 1]
MIN_CHARS = 2  # single characters are mostly noise on photos
DET_MAX_SIDE = 960  # pixels: the detector's input long side cap (PaddleOCR's det_limit_side_len, type max)
DET_SMALL_LONG_SIDE = 480  # pixels: smaller images are enlarged to this long side for the detector only
DET_MIN_SIDE = 32  # pixels: smaller images are upscaled to this short side (the detector's stride)
REC_BATCH = 8  # crops per recogniser run (crops of similar aspect ratio are batched together)
REC_MIN_WIDTH = 48  # pixels: a recogniser batch is padded to its widest crop, at least this (height 48)
MAX_BOXES = 16  # boxes recognised per note, the largest first (the encoder keeps 16 OCR strings per note)

_engines: dict[int, object] = {}  # ONNX intra-op threads -> RapidOCR engine
_lock = threading.Lock()  # guards the engines' creation; read_texts only runs ONNX sessions (thread-safe) and
# RapidOCR's stateless pre/post-processing, never RapidOCR.__call__ (which keeps per-call state)


@dataclass
class OcrRun:
    """What one read_texts call did. texts: accepted lines in image order (duplicates removed);
    boxes: detected text boxes per image; recognised: crops sent to the recogniser (0 = it never ran,
    at most MAX_BOXES)."""

    texts: list[str] = field(default_factory=list)
    boxes: list[int] = field(default_factory=list)
    recognised: int = 0


def _get_engine(threads: int | None = None):
    """The process's RapidOCR engine whose sessions run `threads` intra-op threads (None = ENCODER_THREADS)."""
    n = current_threads() if threads is None else threads
    if n < 1:
        raise ValueError(f"OCR threads must be >= 1, got {n}")
    with _lock:
        engine = _engines.get(n)
        if engine is None:
            from rapidocr_onnxruntime import RapidOCR

            engine = RapidOCR(print_verbose=False, rec_batch_num=REC_BATCH)
            channels, height, _width = engine.text_rec.rec_image_shape  # [3, 48, 320]
            engine.text_rec.rec_image_shape = [channels, height, REC_MIN_WIDTH]  # pad to the batch's widest crop
            _resize_sessions(engine, n)
            _engines[n] = engine
        return engine


def _resize_sessions(engine, threads: int) -> None:
    """Re-open RapidOCR's three ONNX sessions with encoder.threads.session_options(threads) (that many intra-op
    threads, one inter-op thread, no spinning): RapidOCR's own options leave ONNX Runtime's default pools."""
    import onnxruntime as ort
    from rapidocr_onnxruntime.main import DEFAULT_CFG_PATH
    from rapidocr_onnxruntime.utils import read_yaml, update_model_path

    paths = update_model_path(read_yaml(DEFAULT_CFG_PATH))
    for part, section in ((engine.text_det.infer, "Det"), (engine.text_cls.infer, "Cls"), (engine.text_rec.session, "Rec")):
        part.session = ort.InferenceSession(paths[section]["model_path"], sess_options=session_options(threads),
                                            providers=["CPUExecutionProvider"])


def _bgr(image: Image.Image) -> np.ndarray:
    """RGB PIL image -> (H, W, 3) uint8 BGR, upscaled so the short side is >= DET_MIN_SIDE."""
    image = image if image.mode == "RGB" else image.convert("RGB")
    w, h = image.size
    if min(w, h) < DET_MIN_SIDE:
        s = DET_MIN_SIDE / min(w, h)
        image = image.resize((max(DET_MIN_SIDE, round(w * s)), max(DET_MIN_SIDE, round(h * s))), Image.Resampling.BICUBIC)
    return np.ascontiguousarray(np.asarray(image)[:, :, ::-1])  # (H, W, 3) BGR


def _fit_long_side(img: np.ndarray, long_side: int) -> np.ndarray:
    """(H, W, 3) -> the same image enlarged so its long side is long_side (unchanged when already larger)."""
    import cv2

    h, w = img.shape[:2]
    if max(h, w) >= long_side:
        return img
    s = long_side / max(h, w)
    return cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_LINEAR)


def _detect(engine, img: np.ndarray) -> list[np.ndarray]:
    """(H, W, 3) BGR -> text boxes, each (4, 2) float32 corner points in img pixels, top to bottom."""
    from rapidocr_onnxruntime.ch_ppocr_det.utils import DetPreProcess

    det = engine.text_det
    h, w = img.shape[:2]
    long_side = min(DET_MAX_SIDE, max(h, w, DET_SMALL_LONG_SIDE))  # shrink big images, enlarge small ones
    x = DetPreProcess(long_side, "max", det.mean, det.std)(_fit_long_side(img, long_side))  # (1, 3, h', w')
    if x is None:
        return []
    probs = det.infer(x)[0]  # (1, 1, h', w') text probability map
    boxes, _scores = det.postprocess_op(probs, (h, w))  # (K, 4, 2), mapped back to (h, w)
    boxes = det.filter_tag_det_res(boxes, (h, w))
    return list(engine.sorted_boxes(boxes)) if len(boxes) else []


def _area(box: np.ndarray) -> float:
    """Area in pixels of a (4, 2) quadrilateral (shoelace formula)."""
    x, y = box[:, 0], box[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def read_texts(images: list[Image.Image], *, threads: int | None = None) -> OcrRun:
    """OCR all images of a note: detector per image, then one batched recognition of every found box.

    threads: ONNX intra-op threads (None = ENCODER_THREADS; the texts do not depend on it). Returns an OcrRun
    (texts with confidence >= MIN_CONFIDENCE and >= MIN_CHARS characters). Source: RapidOCR (PaddleOCR
    PP-OCRv4 det + mobile cls + PP-OCRv4 rec).
    """
    run = OcrRun()
    if not images:
        return run
    engine = _get_engine(threads)
    found: list[tuple[np.ndarray, np.ndarray]] = []  # (image, box) in reading order, image by image
    for image in images:
        img = _bgr(image)
        boxes = _detect(engine, img)
        run.boxes.append(len(boxes))
        found += [(img, box) for box in boxes]
    if not found:
        return run  # no text anywhere: classifier and recogniser never run
    if len(found) > MAX_BOXES:
        largest = sorted(range(len(found)), key=lambda i: -_area(found[i][1]))[:MAX_BOXES]
        found = [found[i] for i in sorted(largest)]
    crops = [engine.get_crop_img_list(img, [box])[0] for img, box in found]  # full-resolution (h, w, 3) BGR
    crops, _cls, _ = engine.text_cls(crops)  # turns 180°-rotated lines upright
    results, _ = engine.text_rec(crops)  # [(text, score), ...] in crop order
    run.recognised = len(crops)
    seen: dict[str, None] = {}
    for res in results:
        text, score = str(res[0]).strip(), float(res[1])
        if score >= MIN_CONFIDENCE and len(text) >= MIN_CHARS:
            seen.setdefault(text, None)
    run.texts = list(seen)
    return run


def ocr_image(image: Image.Image) -> list[str]:
    """Text lines found in one RGB image, top to bottom; [] when it has no text (see read_texts)."""
    return read_texts([image]).texts


def ocr_images(images: list[Image.Image], *, threads: int | None = None) -> list[str]:
    """OCR strings of all images of a note, in image order (duplicates removed); see read_texts."""
    return read_texts(images, threads=threads).texts
