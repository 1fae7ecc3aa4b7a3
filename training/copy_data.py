"""Training photos and views for the copy tower: openly licensed photos only, disjoint from the copy benchmark.

Photos: grocery `train.txt` photos of the training products (class id != 4 mod 5, as training.sft_data; MIT) and
clothing `train/` photos (CC0), half each (seeded). The benchmark (training.copy_benchmark) uses only held-out
products' photos, clothing `test/` + `validation/` and scikit-image's photos, so no benchmark photo is a training
photo, and no scikit-image photo (the benchmark's "unlike the training data" references) is seen here.

A photo becomes `views_per_photo` views: view 0 is the clean photo, view v >= 1 is one copy family
(training.copy_edits, drawn uniformly or by `family_weights`) with seed (photo index, v), its second photos drawn from `backgrounds`
(other training photos).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from PIL import Image

from encoder.images import load_image
from training.copy_edits import COPY_FAMILIES
from training.sft_data import HELD_OUT_MOD, HELD_OUT_REM, data_root


def training_photos(root: Path | None = None, max_photos: int = 1400, seed: int = 0) -> list[Path]:
    """Up to max_photos training photo paths, half grocery (training products' train.txt) and half clothing train/
    (the rest from the other source when one runs short), in a seeded order. Raises FileNotFoundError when the
    grocery data is missing."""
    root = data_root(root)
    base = root / "grocery" / "dataset"
    grocery = []
    for line in (base / "train.txt").read_text(encoding="utf-8").splitlines():
        if line.strip():
            rel, fine, _ = (x.strip() for x in line.split(","))
            if int(fine) % HELD_OUT_MOD != HELD_OUT_REM:
                grocery.append(base / rel)
    clothing = sorted((root / "clothing" / "train").glob("*/*.jpg"))
    rng = random.Random(seed)
    rng.shuffle(grocery)
    rng.shuffle(clothing)
    half = max_photos // 2
    n_g = min(len(grocery), max(half, max_photos - len(clothing)))
    photos = grocery[:n_g] + clothing[: max_photos - n_g]
    rng.shuffle(photos)
    return photos


def render_view(photo: Image.Image, photo_index: int, view: int, backgrounds: Sequence[Image.Image],
                seed: int = 0, family_weights: Mapping[str, float] | None = None) -> tuple[str, Image.Image]:
    """(family, RGB image) of view `view` of a photo: ("clean", photo) for view 0, else one seeded copy family,
    drawn uniformly or with probability proportional to family_weights[name] (absent = 1)."""
    if view == 0:
        return "clean", photo
    rng = np.random.default_rng([seed, photo_index, view])
    names = list(COPY_FAMILIES)
    if family_weights:
        w = np.array([float(family_weights.get(n, 1.0)) for n in names])
        name = names[int(rng.choice(len(names), p=w / w.sum()))]
    else:
        name = names[int(rng.integers(len(names)))]
    return name, COPY_FAMILIES[name](photo, rng, backgrounds)


def load_photos(paths: Sequence[Path], max_side: int = 512) -> list[Image.Image]:
    """RGB photos, shrunk (aspect kept) so the longer side is <= max_side (edits and rendering stay fast)."""
    out = []
    for p in paths:
        img = load_image(str(p))
        img.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
        out.append(img)
    return out
