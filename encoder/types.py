"""The contract between note content and every UniNote encoder (compact, Qwen3-VL in-process, vLLM HTTP).

Paper §3: a *local* element is one piece of a note (an image, a crop of an image, an OCR string, a text
piece); the *global* element is the whole note. Every vector is L2-normalised and Matryoshka-nested:
`vector[:d] / ||vector[:d]||` is a valid embedding for every `d` in `Encoder.dims`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, Sequence, runtime_checkable

import numpy as np
from PIL import Image


class InputError(ValueError):
    """A note (or one of its parts) cannot be encoded. `note_id` and `field` name what was wrong."""

    def __init__(self, note_id: str | None, field: str, reason: str):
        self.note_id, self.field, self.reason = note_id, field, reason
        where = f"note {note_id!r}" if note_id else "note"
        super().__init__(f"{where}: {field}: {reason}")


class ElementKind(StrEnum):
    IMAGE = "image"  # one whole image of the note
    CROP = "crop"  # a fixed region of one image (box in [0,1] image fractions)
    TITLE = "title"
    BODY = "body"  # one piece of the body text
    OCR = "ocr"  # one OCR string (from the note or RapidOCR)


Box = tuple[float, float, float, float]  # (x0, y0, x1, y1) as fractions of the image width/height


@dataclass
class NoteInput:
    """What an encoder needs of a note: text and decoded RGB images (no file paths)."""

    note_id: str
    title: str = ""
    body: str = ""
    images: list[Image.Image] = field(default_factory=list)  # RGB, already validated
    ocr_texts: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LocalVector:
    """One local element's embedding.

    kind/index identify the element inside its note; index is unique within the kind across the note
    (the 1st crop of the 2nd image is kind=CROP, index=len(crop_boxes), image_index=1). `text` is the element's text for TITLE, BODY,
    OCR; `box` the crop region for CROP (and (0,0,1,1) for IMAGE).
    vector: (D,) float32, L2-normalised, D = the encoder's full dim.
    """

    kind: ElementKind
    index: int
    vector: np.ndarray
    image_index: int | None = None
    box: Box | None = None
    text: str | None = None


@dataclass
class EncodedNote:
    """global_vector: (D,) float32, L2-normalised; locals: every local element of the note."""

    note_id: str
    global_vector: np.ndarray
    locals: list[LocalVector]
    model_version: str


@runtime_checkable
class Encoder(Protocol):
    """notes in, one global vector per note and one local vector per element out.

    dims: Matryoshka dims, ascending, the last one being the full dim D.
    model_version: short stable id of the weights (changes when the checkpoint changes).
    encode raises InputError for a note that cannot be encoded (empty note, bad image).
    """

    dims: tuple[int, ...]
    model_version: str

    def encode(self, notes: Sequence[NoteInput]) -> list[EncodedNote]: ...


def matryoshka_prefix(vectors: np.ndarray, dim: int) -> np.ndarray:
    """(..., D) float32 -> (..., dim) float32: the first `dim` components, L2-renormalised (MRL)."""
    if dim > vectors.shape[-1]:
        raise ValueError(f"Matryoshka dim {dim} exceeds the vector dim {vectors.shape[-1]}")
    prefix = vectors[..., :dim]
    norm = np.linalg.norm(prefix, axis=-1, keepdims=True)
    return (prefix / np.maximum(norm, 1e-12)).astype(np.float32)
