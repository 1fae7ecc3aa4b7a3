"""Fixtures for the compact encoder tests: real photos (skimage.data, ../shared/data), one model per session."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"

# skimage.data photos shipped inside the wheel (no download). `cat` is left out: it is `chelsea` again.
SKIMAGE_PHOTOS = (
    "astronaut", "brick", "camera", "chelsea", "coffee", "coins", "grass", "gravel", "hubble_deep_field",
    "immunohistochemistry", "logo", "moon", "page", "rocket", "text", "clock", "colorwheel", "retina",
)


@pytest.fixture(scope="session", autouse=True)
def _bounded_threads():
    """The test machine is shared: keep torch to two threads."""
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def real_photos() -> dict[str, Image.Image]:
    """name -> RGB PIL image, every skimage.data photo available offline (at least 12 expected)."""
    import skimage.data

    photos = {}
    for name in SKIMAGE_PHOTOS:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                array = getattr(skimage.data, name)()
        except Exception:  # a photo that needs a download (pooch) is simply absent
            continue
        if array.dtype != np.uint8:
            continue
        if array.ndim == 2:
            array = np.stack([array] * 3, axis=-1)
        photos[name] = Image.fromarray(array[..., :3]).convert("RGB")
    assert len(photos) >= 12, f"expected >= 12 offline skimage photos, got {sorted(photos)}"
    return photos


@pytest.fixture(scope="session")
def grocery_photo_paths() -> list[Path]:
    """12 real grocery-store photos (the first of each of 12 classes), or skip when ../shared/data is absent."""
    root = SHARED_DATA / "grocery" / "dataset" / "train"
    if not root.is_dir():
        pytest.skip(f"grocery data set not found at {root.resolve()}")
    paths, seen = [], set()
    for path in sorted(root.rglob("*.jpg")):
        if path.parent not in seen:
            seen.add(path.parent)
            paths.append(path)
        if len(paths) >= 12:
            break
    if len(paths) < 12:
        pytest.skip(f"fewer than 12 grocery classes found under {root.resolve()}")
    return paths


@pytest.fixture(scope="session")
def compact_model():
    """The untrained seed-0 CompactUniNote (eval mode)."""
    from encoder.compact import CompactUniNote

    return CompactUniNote().eval()


@pytest.fixture(scope="session")
def compact_encoder(compact_model):
    from encoder.inprocess import InProcessEncoder

    return InProcessEncoder(compact_model)


def augly_copy(image: Image.Image) -> Image.Image:
    """A DISC21-style edited copy: crop, overlaid text, JPEG re-encode at quality 20 (AugLy)."""
    import augly.image as imaugs

    edited = imaugs.crop(image, x1=0.1, y1=0.05, x2=0.85, y2=0.9)
    edited = imaugs.overlay_text(
        edited, text=[[5, 12, 7, 3, 8] * 3], font_size=0.12, x_pos=0.05, y_pos=0.4, color=(255, 255, 0)
    )
    return imaugs.encoding_quality(edited, quality=20).convert("RGB")


@pytest.fixture(scope="session")
def make_augly_copy():
    """The augly_copy function (fixtures are how test modules share helpers here)."""
    return augly_copy
