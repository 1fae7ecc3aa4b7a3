"""Note -> encoder input: decode images safely, add OCR texts when the note has none, hash every image.

This is the part of ingestion that can fail on bad input; it runs before anything is written, so a
note that fails here leaves no trace in the vector store.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.image_hashes import PdqHash, pdq_hash
from app.notes import Note
from app.records.registry import content_hash
from app.ocr import ocr_images
from encoder.images import load_image
from encoder.types import NoteInput


@dataclass
class PreparedNote:
    """A validated note with decoded images. pdq[i] is image i's PDQ hash (Meta's 256-bit perceptual hash)."""

    note: Note
    inputs: NoteInput
    pdq: list[PdqHash]
    content_hash: str  # app.records.registry.content_hash: sha256 hex of the note's fields and image bytes


def prepare_note(note: Note, *, ocr_enabled: bool) -> PreparedNote:
    """Decode and check every image, run OCR if enabled and the note has no OCR texts, hash images.

    Raises encoder.types.InputError naming the note and the image (e.g. `images[1]`) that is missing,
    corrupt, truncated, too large, a decompression bomb or not an image at all.
    """
    images = [load_image(path, note_id=note.note_id, field=f"images[{i}]") for i, path in enumerate(note.images)]
    if note.ocr_texts is not None:
        ocr = list(note.ocr_texts)
    else:
        ocr = ocr_images(images) if ocr_enabled and images else []
    inputs = NoteInput(note_id=note.note_id, title=note.title, body=note.body, images=images, ocr_texts=ocr)
    return PreparedNote(
        note=note,
        inputs=inputs,
        pdq=[pdq_hash(im) for im in images],
        content_hash=content_hash(note),
    )
