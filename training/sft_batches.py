"""Stage-1 batches: the pairs of every task family, sampled from a training Corpus by (step, micro, rank).

A note here is a `NoteSpec`: image tokens (view indices, embedded through the image head's whole-image region)
and text tokens ((ElementKind, text index) through the text head), fused like encoder.inprocess does.

Families (paper §4.1), each `batch_size` pairs per global batch:
- copy: query = a seeded copy edit of a photo, positive = the unedited photo; band negatives (untrained-model
  cosine in the band) per query; in-batch negatives include other photos of the same product (a different photo
  is not a copy).
- image_note: query = a photo; positive = its note with that photo replaced by an edited copy of it ("another
  description of it", so the image cannot match itself); rule negative = the same note minus the photo.
  Symmetric InfoNCE gives note→image too.
- text_note: query = a grocery product's title or one description piece; positive = a note of the product with
  photos and the *other* texts.
- note_note: query = a note; positive = its re-post (edited copies of some of its photos, same title, another
  review); hard negative = another note of the same product (other photos, same texts).
The global batch is drawn from numpy's default_rng([seed, step, micro]); rank r takes items
[r*b, (r+1)*b) of every family, b = batch_size / world_size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from encoder.types import ElementKind
from training.distributed import DistInfo
from training.sft_corpus import Corpus


@dataclass
class NoteSpec:
    """views: view indices of image tokens; texts: (kind, text index) of text tokens."""

    views: list[int] = field(default_factory=list)
    texts: list[tuple[ElementKind, int]] = field(default_factory=list)


@dataclass
class SFTBatch:
    """Local (this rank's) share of one global batch. Empty lists = family not sampled.

    copy_query / copy_positive: view indices (b,); copy_band: (b, K) photo indices, -1 = none.
    image_query: view indices (b,); image_positive / image_rule: NoteSpec (b each).
    text_query: text indices (b,); text_positive: NoteSpec (b,).
    note_query / note_positive / note_hard: NoteSpec (b each), note_hard[i] None when there is no hard negative.
    text_pool: text indices (b,) whose text-text similarities are held to the frozen e5 geometry.
    """

    copy_query: list[int] = field(default_factory=list)
    copy_positive: list[int] = field(default_factory=list)
    copy_band: list[list[int]] = field(default_factory=list)
    image_query: list[int] = field(default_factory=list)
    image_positive: list[NoteSpec] = field(default_factory=list)
    image_rule: list[NoteSpec] = field(default_factory=list)
    text_query: list[int] = field(default_factory=list)
    text_positive: list[NoteSpec] = field(default_factory=list)
    note_query: list[NoteSpec] = field(default_factory=list)
    note_positive: list[NoteSpec] = field(default_factory=list)
    note_hard: list[NoteSpec | None] = field(default_factory=list)
    text_pool: list[int] = field(default_factory=list)

    @property
    def items(self) -> int:
        return len(self.copy_query) + len(self.image_query) + len(self.text_query) + len(self.note_query)


class SFTBatchSampler:
    """batch_fn for training.trainer.Trainer: (step, micro, DistInfo) -> SFTBatch.

    band: (P, K) photo indices from training.band_negatives (rows of photos without an edit are ignored).
    families: the task families to sample (others stay empty). Raises ValueError if batch_size is not divisible
    by the world size.
    """

    def __init__(self, corpus: Corpus, batch_size: int, band: np.ndarray, *, seed: int = 0,
                 images_per_note: tuple[int, int] = (1, 4), families: tuple[str, ...] = (
                     "copy", "image_note", "text_note", "note_note", "text_geometry")):
        self.c, self.batch_size, self.band, self.seed = corpus, batch_size, band, seed
        self.images_per_note, self.families = images_per_note, families
        self.copy_photos = np.array([p for p in range(len(corpus.photos))
                                     if corpus.edited_views[p] and corpus.original_view[p] >= 0])
        self.products = np.arange(len(corpus.products))
        self.photos_of = [corpus.product_photos(i) for i in range(len(corpus.products))]
        self.grocery = np.array([i for i, p in enumerate(corpus.products)
                                 if p.source == "grocery" and (corpus.description_texts[i] or p.title)])
        if len(self.copy_photos) < batch_size or len(self.products) < batch_size:
            raise ValueError(f"batch_size {batch_size} exceeds the corpus ({len(self.copy_photos)} photos with "
                             f"edits, {len(self.products)} products)")

    def _review(self, rng: np.random.Generator, avoid: int = -1) -> int:
        r = int(rng.integers(len(self.c.review_texts)))
        return (r + 1) % len(self.c.review_texts) if r == avoid else r

    def _texts(self, product: int, review: int, title: bool = True, description: bool = True) -> list:
        out = [(ElementKind.TITLE, self.c.title_text[product])] if title else []
        if description:
            out += [(ElementKind.BODY, t) for t in self.c.description_texts[product]]
        return out + [(ElementKind.BODY, t) for t in self.c.review_texts[review]]

    def _edited(self, photo: int, rng: np.random.Generator) -> int:
        views = self.c.edited_views[photo]
        return views[int(rng.integers(len(views)))] if views else self.c.original_view[photo]

    def _note_photos(self, product: int, rng: np.random.Generator, lo: int | None = None) -> list[int]:
        photos = self.photos_of[product]
        lo = lo or self.images_per_note[0]
        k = min(int(rng.integers(lo, self.images_per_note[1] + 1)), len(photos))
        return [photos[i] for i in rng.choice(len(photos), size=k, replace=False)]

    def global_batch(self, step: int, micro: int) -> SFTBatch:
        rng = np.random.default_rng([self.seed, step, micro])
        B, c, b = self.batch_size, self.c, SFTBatch()
        if "copy" in self.families:
            for p in rng.choice(self.copy_photos, size=B, replace=False):
                b.copy_query.append(self._edited(int(p), rng))
                b.copy_positive.append(c.original_view[p])
                b.copy_band.append([int(x) for x in self.band[p]])
        if "image_note" in self.families:
            for prod in rng.choice(self.products, size=B, replace=False):
                photos = self._note_photos(int(prod), rng)
                q, review = photos[0], self._review(rng)
                texts = self._texts(int(prod), review, description=bool(rng.random() < 0.5))
                b.image_query.append(c.original_view[q])
                b.image_positive.append(NoteSpec([self._edited(q, rng)] + [c.original_view[p] for p in photos[1:]], texts))
                b.image_rule.append(NoteSpec([c.original_view[p] for p in photos[1:]], texts))
        if "text_note" in self.families and len(self.grocery) >= B:
            for prod in rng.choice(self.grocery, size=B, replace=False):
                prod = int(prod)
                photos, review = self._note_photos(prod, rng), self._review(rng)
                pieces = c.description_texts[prod]
                if pieces and rng.random() < 0.5:  # description piece finds the note with the title
                    b.text_query.append(pieces[int(rng.integers(len(pieces)))])
                    texts = self._texts(prod, review, title=True, description=False)
                else:  # title finds the note with the description
                    b.text_query.append(c.title_text[prod])
                    texts = self._texts(prod, review, title=False, description=True)
                b.text_positive.append(NoteSpec([c.original_view[p] for p in photos], texts))
        if "note_note" in self.families:
            for prod in rng.choice(self.products, size=B, replace=False):
                prod = int(prod)
                photos, review = self._note_photos(prod, rng), self._review(rng)
                texts = self._texts(prod, review, description=bool(rng.random() < 0.5))
                b.note_query.append(NoteSpec([c.original_view[p] for p in photos], texts))
                kept = [p for p in photos if rng.random() < 0.7] or photos[:1]
                repost_texts = self._texts(prod, self._review(rng, review), description=bool(rng.random() < 0.5))
                b.note_positive.append(NoteSpec([self._edited(p, rng) for p in kept], repost_texts))
                others = [p for p in self.photos_of[prod] if p not in photos]
                if others:
                    k = min(len(others), len(photos))
                    alt = [others[i] for i in rng.choice(len(others), size=k, replace=False)]
                    b.note_hard.append(NoteSpec([c.original_view[p] for p in alt], texts))
                else:
                    b.note_hard.append(None)
        if "text_geometry" in self.families and len(c.texts) >= B:
            b.text_pool = [int(t) for t in rng.choice(len(c.texts), size=B, replace=False)]
        return b

    def __call__(self, step: int, micro: int, info: DistInfo) -> SFTBatch:
        if self.batch_size % info.world_size:
            raise ValueError(f"batch_size {self.batch_size} is not divisible by world size {info.world_size}")
        g = self.global_batch(step, micro)
        n = self.batch_size // info.world_size
        lo, hi = info.rank * n, (info.rank + 1) * n
        return SFTBatch(**{k: v[lo:hi] for k, v in vars(g).items()})
