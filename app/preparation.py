"""Note -> encoder input: decode images safely, add OCR texts when the note has none, hash every image.

This is the part of ingestion that can fail on bad input; it runs before anything is written, so a
note that fails here leaves no trace in the vector store.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

from PIL import Image

from app.image_hashes import PdqHash, pdq_hash
from app.notes import Note
from app.records.registry import content_hash
from app.ocr import ocr_images
from encoder.images import load_image
from encoder.threads import current_threads
from encoder.types import InputError, NoteInput

OCR_THREADS_AHEAD = 1  # ONNX intra-op threads of each prepared_ahead worker's OCR


@dataclass
class PreparedNote:
    """A validated note with decoded images. pdq[i] is image i's PDQ hash (Meta's 256-bit perceptual hash)."""

    note: Note
    inputs: NoteInput
    pdq: list[PdqHash]
    content_hash: str  # app.records.registry.content_hash: sha256 hex of the note's fields and image bytes
    ocr_ms: float = 0.0  # wall ms spent in OCR (0 when the note brought its texts or OCR is off)
    prepare_ms: float = 0.0  # wall ms of decoding, PDQ hashing and content hashing (OCR excluded)


def prepare_note(note: Note, *, ocr_enabled: bool, ocr_threads: int | None = None,
                 decoded: Callable[[list[Image.Image]], None] | None = None) -> PreparedNote:
    """Decode and check every image, run OCR if enabled and the note has no OCR texts, hash images.

    ocr_threads: ONNX intra-op threads of the OCR (None = ENCODER_THREADS; app.ocr.read_texts).
    decoded: called with the decoded RGB images as soon as they are all read, before OCR and hashing (Library.check
    starts the geometric verification's SIFT of the query there, in worker threads).

    Raises encoder.types.InputError naming the note and the image (e.g. `images[1]`) that is missing,
    corrupt, truncated, too large, a decompression bomb or not an image at all.
    """
    t0 = time.perf_counter()
    images = [load_image(path, note_id=note.note_id, field=f"images[{i}]") for i, path in enumerate(note.images)]
    if decoded is not None:
        decoded(images)
    ocr_s = 0.0
    if note.ocr_texts is not None:
        ocr = list(note.ocr_texts)
    elif ocr_enabled and images:
        t_ocr = time.perf_counter()
        ocr = ocr_images(images, threads=ocr_threads)
        ocr_s = time.perf_counter() - t_ocr
    else:
        ocr = []
    inputs = NoteInput(note_id=note.note_id, title=note.title, body=note.body, images=images, ocr_texts=ocr)
    prepared = PreparedNote(
        note=note,
        inputs=inputs,
        pdq=[pdq_hash(im) for im in images],
        content_hash=content_hash(note),
    )
    prepared.ocr_ms = ocr_s * 1e3
    prepared.prepare_ms = (time.perf_counter() - t0 - ocr_s) * 1e3
    return prepared


def prepared_ahead(notes: Sequence[Note], *, ocr_enabled: bool,
                   workers: int | None = None) -> Iterator[list[tuple[Note, PreparedNote | InputError]]]:
    """prepare_note over `notes` in worker threads, yielded in order as runs of ready notes.

    Each item is the next note (waited for) plus every later one already prepared, so the caller encodes
    while the workers go on: a run's note is paired with its PreparedNote or the InputError that refused
    it. workers: threads (default ENCODER_THREADS), each running its note's OCR on one ONNX thread
    (OCR_THREADS_AHEAD): notes side by side use the cores for less CPU than one note's operators split over
    them (app.ocr); decoding, OCR (ONNX Runtime) and PDQ release the GIL. Any other error propagates after
    the pending work is cancelled.
    """
    if not notes:
        return
    n = workers or current_threads()
    pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="uninote-prepare")
    try:
        futures: list[Future] = [pool.submit(_prepare_or_refusal, note, ocr_enabled) for note in notes]
        i = 0
        while i < len(futures):
            run = [(notes[i], futures[i].result())]  # wait for the next note in order
            i += 1
            while i < len(futures) and futures[i].done():
                run.append((notes[i], futures[i].result()))
                i += 1
            yield run
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _prepare_or_refusal(note: Note, ocr_enabled: bool) -> PreparedNote | InputError:
    try:
        return prepare_note(note, ocr_enabled=ocr_enabled, ocr_threads=OCR_THREADS_AHEAD)
    except InputError as e:
        return e
