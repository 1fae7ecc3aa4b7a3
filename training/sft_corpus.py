"""The item lists of one split side: which image views and texts go through the frozen towers, and how they relate.

A `Corpus` indexes every photo of a `SplitData` (product photos, then extra references, then distractors), the
views the towers see (each photo's original, unless it is a distractor, then `edits_per_photo` seeded copy edits),
and every text (product titles, product description pieces, review pieces). Training samples notes and pairs from
these indices; evaluation builds its queries and references from them. Everything is deterministic in `seed`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from encoder.text_pieces import split_body
from training.edits import EDITS
from training.feature_cache import ImageView
from training.sft_data import Product, SplitData

if TYPE_CHECKING:
    import torch

    from training.sft_config import DataConfig


@dataclass
class Corpus:
    """photos: (P,) paths; photo_product: product index per photo, -1 for extra/distractor photos;
    views: the tower inputs; view_photo: photo index per view; original_view: photo -> view index of the
    unedited photo (-1 for distractors); edited_views: photo -> view indices of its edited copies;
    texts: every distinct text; title_text / description_texts: product -> text indices;
    review_texts: per review, the text indices of its body pieces."""

    products: list[Product]
    photos: list[Path] = field(default_factory=list)
    photo_product: list[int] = field(default_factory=list)
    views: list[ImageView] = field(default_factory=list)
    view_photo: list[int] = field(default_factory=list)
    original_view: list[int] = field(default_factory=list)
    edited_views: list[list[int]] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    title_text: list[int] = field(default_factory=list)
    description_texts: list[list[int]] = field(default_factory=list)
    review_texts: list[list[int]] = field(default_factory=list)
    _text_rows: dict[str, int] = field(default_factory=dict, repr=False)

    def text_row(self, text: str) -> int:
        """Index of `text` in texts (added when new)."""
        if text not in self._text_rows:
            self._text_rows[text] = len(self.texts)
            self.texts.append(text)
        return self._text_rows[text]

    def product_photos(self, product: int) -> list[int]:
        """Photo indices of one product."""
        return [i for i, p in enumerate(self.photo_product) if p == product]


def _add_photo(c: Corpus, path: Path, product: int, n_edits: int, with_original: bool, salt: int) -> None:
    photo = len(c.photos)
    c.photos.append(path)
    c.photo_product.append(product)
    if with_original:
        c.original_view.append(len(c.views))
        c.views.append(ImageView(str(path)))
        c.view_photo.append(photo)
    else:
        c.original_view.append(-1)
    names = sorted(EDITS)
    edited = []
    for k in range(n_edits):
        seed = (salt * 1_000_003 + photo * 101 + k) % (1 << 31)
        name = names[int(np.random.default_rng(seed).integers(len(names)))]
        edited.append(len(c.views))
        c.views.append(ImageView(str(path), name, seed))
        c.view_photo.append(photo)
    c.edited_views.append(edited)


def build_corpus(split: SplitData, *, edits_per_photo: int, seed: int, max_reviews: int = 3000,
                 piece_chars: int = 160, max_body_pieces: int = 16) -> Corpus:
    """The corpus of one split side. Product photos and extra photos get their original view and
    `edits_per_photo` edited views; distractor photos get only edited views (they are queries, never references).
    `seed` salts the edit seeds (use different salts for training and evaluation)."""
    c = Corpus(products=list(split.products))
    for pi, product in enumerate(split.products):
        for path in product.photos:
            _add_photo(c, path, pi, edits_per_photo, True, seed)
        c.title_text.append(c.text_row(product.title[:piece_chars]))
        pieces = split_body(product.description, piece_chars, max_body_pieces) if product.description else []
        c.description_texts.append([c.text_row(p) for p in pieces])
    for path in split.extra_photos:
        _add_photo(c, path, -1, edits_per_photo, True, seed)
    for path in split.distractor_photos:
        _add_photo(c, path, -1, max(edits_per_photo, 1), False, seed)
    for review in split.reviews[:max_reviews]:
        pieces = split_body(review, piece_chars, max_body_pieces)
        if pieces:
            c.review_texts.append([c.text_row(p) for p in pieces])
    return c


EVAL_SALT = 7919  # added to the data seed for held-out edit seeds (training and evaluation edits differ)


def side_corpus(data: "DataConfig", held_out: bool) -> Corpus:
    """The corpus of the training (held_out=False) or evaluation side for a DataConfig (training.sft_config)."""
    from training.sft_data import load_split

    split = load_split(held_out, Path(data.data_root) if data.data_root else None,
                       max_photos_per_product=data.max_photos_per_product, max_clothing=data.max_clothing,
                       max_distractors=data.max_distractors, seed=data.seed)
    edits = data.eval_edits_per_photo if held_out else data.train_edits_per_photo
    return build_corpus(split, edits_per_photo=edits, seed=data.seed + (EVAL_SALT if held_out else 0),
                        max_reviews=data.max_reviews)


@dataclass
class CorpusFeatures:
    """Frozen-tower outputs of a corpus. views: (V, R, 1280) float16; texts: (N, 384) float32."""

    views: "torch.Tensor"
    texts: "torch.Tensor"


def corpus_features(model, corpus: Corpus, cache_dir: Path | None = None, progress: bool = True) -> CorpusFeatures:
    """Run (or read from the cache) the frozen towers on every view and text of `corpus`."""
    from training.feature_cache import cached_region_features, cached_text_features

    return CorpusFeatures(cached_region_features(model, corpus.views, cache_dir, progress=progress),
                          cached_text_features(model, corpus.texts, cache_dir, progress=progress))
