"""PDQ hashes on real photos (skimage.data, ../shared/data/grocery) and DISC21-style AugLy edits."""

from __future__ import annotations

import itertools
from pathlib import Path

import augly.image as imaugs
import numpy as np
import pytest
import skimage.data
from PIL import Image

from app.image_hashes import PDQ_BITS, PdqHash, hamming, is_pdq_match, pdq_hash

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "camera",
          "coins", "page", "text", "brick", "grass", "gravel"]


@pytest.fixture(scope="module")
def photos() -> dict[str, Image.Image]:
    return {name: Image.fromarray(getattr(skimage.data, name)()).convert("RGB") for name in PHOTOS}


@pytest.fixture(scope="module")
def hashes(photos) -> dict[str, PdqHash]:
    return {name: pdq_hash(image) for name, image in photos.items()}


def test_hash_is_256_bits_with_quality(hashes):
    h = hashes["astronaut"]
    assert h.bits.shape == (PDQ_BITS,) and h.bits.dtype == np.uint8
    assert set(np.unique(h.bits)) <= {0, 1}
    assert 0 <= h.quality <= 100 and h.quality >= 50  # a detailed photo is a trustworthy hash


def test_grayscale_and_rgba_inputs_are_converted(photos):
    gray = Image.fromarray(skimage.data.camera())  # mode "L"
    assert pdq_hash(gray) == pdq_hash(gray.convert("RGB"))
    rgba = photos["coffee"].convert("RGBA")
    assert hamming(pdq_hash(rgba), pdq_hash(photos["coffee"])) == 0


def test_flat_image_has_low_quality():
    flat = Image.new("RGB", (128, 128), (120, 120, 120))
    assert pdq_hash(flat).quality < 50


def test_different_photos_are_far_apart(hashes):
    distances = [hamming(hashes[a], hashes[b]) for a, b in itertools.combinations(PHOTOS, 2)]
    assert min(distances) > 31


@pytest.mark.parametrize("edit", [
    lambda im: imaugs.encoding_quality(im, quality=20),
    lambda im: imaugs.overlay_text(im),
    lambda im: im.resize((im.width // 2, im.height // 2)),
], ids=["jpeg_q20", "overlay_text", "half_size"])
def test_light_edits_stay_within_meta_threshold(photos, hashes, edit):
    for name in ("astronaut", "coffee", "rocket"):
        edited = pdq_hash(edit(photos[name]).convert("RGB"))
        assert is_pdq_match(hashes[name], edited), (name, hamming(hashes[name], edited))


def test_hex_round_trip(hashes):
    h = hashes["rocket"]
    text = h.to_hex()
    assert len(text) == 64 and int(text, 16) >= 0
    assert PdqHash.from_hex(text, h.quality) == h


def test_bad_inputs_name_the_problem(hashes):
    with pytest.raises(ValueError, match="shape"):
        PdqHash(np.zeros(255, np.uint8), 100)
    with pytest.raises(ValueError, match="0/1"):
        PdqHash(np.full(256, 2, np.uint8), 100)
    with pytest.raises(ValueError, match="64"):
        PdqHash.from_hex("abc", 100)
    with pytest.raises(ValueError, match="shapes"):
        hamming(hashes["rocket"], np.zeros(128, np.uint8))
    with pytest.raises(TypeError, match="PIL"):
        pdq_hash(np.zeros((8, 8, 3), np.uint8))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        pdq_hash(Image.new("RGB", (0, 0)))


def test_same_product_photos_are_not_copies():
    """Grocery: different photos of one product are hard negatives, never PDQ matches."""
    root = DATA / "grocery" / "dataset"
    if not root.is_dir():
        pytest.skip(f"real data not found at {root} (../shared/data/grocery)")
    rows = [line.split(",")[0].strip() for line in (root / "train.txt").read_text().splitlines() if line.strip()]
    same_class = [r for r in rows if "/Granny-Smith/" in r][:6]
    hs = [pdq_hash(Image.open(root / r)) for r in same_class]
    assert len(hs) == 6
    for a, b in itertools.combinations(hs, 2):
        assert not is_pdq_match(a, b)
    reencoded = imaugs.encoding_quality(Image.open(root / same_class[0]).convert("RGB"), quality=30)
    assert is_pdq_match(hs[0], pdq_hash(reencoded))
