"""app/geometric_verification.py on real photos: a crop / paste copy verifies with many inliers and the right box;
an unrelated photo (or a different photo of the same product) does not."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from app.geometric_verification import MIN_INLIERS, MIRROR_PERMUTATION, local_features, match, mirrored, verify
from tests.training.sft_support import SHARED_DATA, real_photos


def test_a_crop_verifies_and_its_box_is_where_it_was_cut():
    photo = real_photos()[0]  # astronaut, 512x512
    crop = photo.crop((128, 64, 448, 384))  # x 0.25-0.875, y 0.125-0.75
    v = verify(crop, photo)
    assert v.inliers >= 50 and v.score > 0.6
    x0, y0, x1, y1 = v.cand_box
    assert x0 == pytest.approx(0.25, abs=0.08) and y0 == pytest.approx(0.125, abs=0.08)
    assert x1 == pytest.approx(0.875, abs=0.08) and y1 == pytest.approx(0.75, abs=0.08)


def test_a_photo_pasted_into_another_verifies_with_the_query_box_around_it():
    photo, background = real_photos()[1], real_photos()[3].resize((512, 512))  # coffee into rocket
    query = background.copy()
    query.paste(photo.resize((256, 170)), (200, 260))  # x 0.39-0.89, y 0.51-0.84
    v = verify(query, photo)
    assert v.inliers >= 30
    x0, y0, x1, y1 = v.query_box
    assert 0.3 <= x0 and x1 <= 0.95 and 0.45 <= y0 and y1 <= 0.9


def test_a_mirrored_copy_verifies_through_the_mirrored_query():
    photo = real_photos()[2]
    v = verify(photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT), photo)
    assert v.mirrored and v.inliers >= 50


def test_unrelated_photos_do_not_verify():
    photos = real_photos()
    for a, b in ((0, 1), (2, 3), (7, 9)):
        v = verify(photos[a], photos[b])
        assert v.score == 0.0 and v.inliers < MIN_INLIERS and v.query_box is None


@pytest.mark.skipif(not (SHARED_DATA / "grocery" / "dataset" / "train.txt").is_file(),
                    reason=f"real data not found at {SHARED_DATA} (grocery/dataset)")
def test_two_photos_of_one_product_are_not_a_copy_but_a_crop_of_one_is():
    folder = SHARED_DATA / "grocery" / "dataset" / "train" / "Fruit" / "Apple" / "Golden-Delicious"
    a, b = (Image.open(p).convert("RGB") for p in sorted(folder.glob("*.jpg"))[:2])
    assert verify(a, b).score == 0.0
    w, h = a.size
    assert verify(a.crop((w // 5, h // 5, w, h)), a).inliers >= 30


def test_blank_and_tiny_images_give_no_match_and_bad_input_is_named():
    blank = Image.new("RGB", (300, 300), (128, 128, 128))
    assert verify(blank, real_photos()[0]).inliers == 0
    assert verify(Image.new("RGB", (1, 1)), real_photos()[0]).score == 0.0
    with pytest.raises(TypeError, match="PIL"):
        verify(np.zeros((10, 10, 3)), real_photos()[0])
    with pytest.raises(ValueError, match="empty"):
        verify(Image.new("RGB", (0, 5)), real_photos()[0])


def _grocery_photos(n: int) -> list[Image.Image]:
    folder = SHARED_DATA / "grocery" / "dataset" / "val" / "Packages"
    return [Image.open(p).convert("RGB") for p in sorted(folder.rglob("*.jpg"))[::40][:n]]


@pytest.mark.skipif(not (SHARED_DATA / "grocery" / "dataset" / "val").is_dir(),
                    reason=f"real data not found at {SHARED_DATA} (grocery/dataset/val)")
def test_mirrored_features_derived_from_the_plain_ones_match_real_sift_on_the_flipped_photo():
    """The derived descriptors of the keypoints real SIFT finds again on the flipped pixels are (mostly) the real
    ones, and a flipped, cropped, shrunk copy verifies with the inliers that a second SIFT pass would give."""
    photos = list(real_photos()[:4]) + _grocery_photos(4)
    ratios = []
    for photo in photos:
        plain, real = local_features(photo), local_features(photo, mirror=True)
        derived = mirrored(plain)
        assert derived.descriptors.shape == plain.descriptors.shape and derived.size == plain.size
        assert np.array_equal(derived.keypoints, plain.keypoints)  # positions stay in the un-mirrored image
        px = np.float32(plain.size)
        dist = np.linalg.norm(real.keypoints[:, None] * px - plain.keypoints[None] * px, axis=2)  # (R, P) px
        same = dist.min(axis=1) < 1.0  # real mirrored keypoints found again by the plain pass (~0.5 px apart)
        diff = np.array([np.min(np.linalg.norm(derived.descriptors[dist[r] < 1.0] - real.descriptors[r], axis=1))
                         / max(np.linalg.norm(real.descriptors[r]), 1.0) for r in np.flatnonzero(same)])
        assert same.mean() > 0.85 and np.median(diff) < 0.1, (same.mean(), np.median(diff))  # a wrong permutation: ~1

        w, h = photo.size
        copy = photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT).crop((w // 8, h // 10, w, h * 9 // 10))
        copy = copy.resize((int(copy.width * 0.7), int(copy.height * 0.7)))
        q = local_features(copy)
        by_real = match(local_features(copy, mirror=True), plain, mirrored=True)
        by_derived = match(mirrored(q), plain, mirrored=True)
        assert by_derived.mirrored and by_real.inliers >= 30
        ratios.append(by_derived.inliers / by_real.inliers)
    assert min(ratios) > 0.85 and 0.95 < float(np.median(ratios)) < 1.05, ratios


def test_the_mirror_permutation_is_an_involution_over_all_128_bins():
    assert sorted(MIRROR_PERMUTATION.tolist()) == list(range(128))
    assert np.array_equal(MIRROR_PERMUTATION[MIRROR_PERMUTATION], np.arange(128))  # mirroring twice is the identity
