"""A note -> its elements as Qwen3-VL conversations: the same list for the in-process encoder and the vLLM
client, so both embed exactly the same inputs.

Locals (paper §3): IMAGE per image, CROP per image and fixed box (cut from the image and embedded as an
image of its own), TITLE, BODY pieces (encoder.text_pieces.split_body), OCR strings. The global element
is one conversation holding all the note's images and its text (title, body, OCR), under the "note"
instruction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from encoder.qwen3vl_config import Qwen3VLEncoderConfig
from encoder.qwen3vl_inputs import Conversation, crop_box, fit_image
from encoder.text_pieces import split_body
from encoder.types import Box, ElementKind, EncodedNote, InputError, LocalVector, NoteInput


@dataclass
class Element:
    """One local element: where it sits in the note, and the conversation that embeds it."""

    kind: ElementKind
    index: int  # counts within the kind
    conversation: Conversation
    image_index: int | None = None
    box: Box | None = None
    text: str | None = None


def note_elements(note: NoteInput, cfg: Qwen3VLEncoderConfig) -> tuple[Conversation, list[Element]]:
    """(global conversation, local elements) of one note.

    Raises InputError when the note has no title, body, OCR text or images, or an image is unusable
    (zero-sized, aspect ratio above 200).
    """
    title = (note.title or "").strip()
    body = (note.body or "").strip()
    ocr = [t.strip() for t in note.ocr_texts if t and t.strip()][: cfg.max_ocr_texts]
    if not (title or body or ocr or note.images):
        raise InputError(note.note_id, "note", "empty note: no title, body, OCR text or images")
    fitted = []
    for i, image in enumerate(note.images):
        if image.width < 1 or image.height < 1:
            raise InputError(note.note_id, f"images[{i}]", f"zero-sized image {image.size}")
        try:
            fitted.append(fit_image(image, cfg.min_pixels, cfg.max_pixels))
        except ValueError as e:
            raise InputError(note.note_id, f"images[{i}]", str(e)) from e

    ins = cfg.instructions
    locals_: list[Element] = []
    crop_index = 0
    for i, (image, small) in enumerate(zip(note.images, fitted)):
        locals_.append(Element(ElementKind.IMAGE, i, Conversation(ins["image"], [small]), i, (0.0, 0.0, 1.0, 1.0)))
        for box in cfg.crop_boxes:
            crop = fit_image(crop_box(image.convert("RGB"), box), cfg.min_pixels, cfg.max_pixels)
            locals_.append(Element(ElementKind.CROP, crop_index, Conversation(ins["crop"], [crop]), i, box))
            crop_index += 1
    if title:
        t = title[: cfg.piece_chars]
        locals_.append(Element(ElementKind.TITLE, 0, Conversation(ins["title"], text=t), text=t))
    for j, piece in enumerate(split_body(body, cfg.piece_chars, cfg.max_body_pieces) if body else []):
        locals_.append(Element(ElementKind.BODY, j, Conversation(ins["body"], text=piece), text=piece))
    for j, text in enumerate(ocr):
        t = text[: cfg.piece_chars]
        locals_.append(Element(ElementKind.OCR, j, Conversation(ins["ocr"], text=t), text=t))

    return note_conversation(fitted, title, body, ocr, cfg), locals_


def note_conversation(fitted: list[Image.Image], title: str, body: str, ocr: list[str],
                      cfg: Qwen3VLEncoderConfig) -> Conversation:
    """The global element: every (fitted) image, then title, body and OCR text on lines of their own, cut
    to cfg.max_note_chars, under the "note" instruction."""
    note_text = "\n".join(p for p in (title, body, " ".join(ocr)) if p)[: cfg.max_note_chars]
    return Conversation(cfg.instructions["note"], list(fitted), note_text)


Plan = tuple[Conversation, list[Element]]


def flatten(plans: list[Plan]) -> list[Conversation]:
    """All conversations of the plans in order: each note's global conversation, then its elements'."""
    out: list[Conversation] = []
    for global_conv, elements in plans:
        out.append(global_conv)
        out.extend(e.conversation for e in elements)
    return out


def assemble(notes: list[NoteInput], plans: list[Plan], vectors: np.ndarray, model_version: str) -> list[EncodedNote]:
    """vectors: (N, D) float32 in flatten(plans) order -> one EncodedNote per note."""
    out, row = [], 0
    for note, (_, elements) in zip(notes, plans):
        global_vector = vectors[row]
        row += 1
        locals_ = []
        for e in elements:
            locals_.append(LocalVector(e.kind, e.index, vectors[row], e.image_index, e.box, e.text))
            row += 1
        out.append(EncodedNote(note.note_id, global_vector, locals_, model_version))
    return out
