"""training/copy_edits.py: every copy family on a real photo gives a valid, seeded, changed RGB image."""

from __future__ import annotations

import numpy as np
import pytest

from tests.training.sft_support import real_photos
from training.copy_edits import COPY_FAMILIES, apply_family

FAMILIES = ("crop", "rotate", "perspective", "flip", "scale", "colour", "blur", "overlay_text", "overlay_emoji",
            "pad_stripes", "meme", "screenshot", "jpeg", "combo", "paste", "collage")


def test_registry_holds_the_issue_families_in_order():
    assert tuple(COPY_FAMILIES) == FAMILIES


@pytest.mark.parametrize("name", FAMILIES)
def test_family_is_valid_deterministic_and_changes_the_photo(name):
    photo, others = real_photos()[2], real_photos()[4:7]  # chelsea; unrelated photos for paste / collage
    a, b = apply_family(name, photo, 11, others), apply_family(name, photo, 11, others)
    assert a.mode == "RGB" and min(a.size) >= 16
    arr = np.asarray(a)
    assert arr.dtype == np.uint8 and arr.std() > 5  # a real picture, not a blank canvas
    assert np.array_equal(arr, np.asarray(b))
    assert a.size != photo.size or not np.array_equal(arr, np.asarray(photo))


def test_crop_keeps_30_to_70_percent_of_the_area():
    photo = real_photos()[0]
    for seed in range(20):
        out = apply_family("crop", photo, seed)
        frac = out.width * out.height / (photo.width * photo.height)
        assert 0.25 <= frac <= 0.72, (seed, frac)


def test_paste_covers_25_to_40_percent_of_the_background():
    photo = real_photos()[0]  # astronaut: orange suit pixels make the pasted region measurable
    for seed in range(5):
        out = apply_family("paste", photo, seed, real_photos()[7:9])  # camera, coins: greyscale backgrounds
        arr = np.asarray(out).astype(int)
        coloured = (np.abs(arr[..., 0] - arr[..., 1]) + np.abs(arr[..., 1] - arr[..., 2])) > 20
        assert 0.12 <= coloured.mean() <= 0.42, (seed, coloured.mean())


def test_families_needing_a_second_photo_say_so_and_unknown_names_list_the_known():
    with pytest.raises(ValueError, match="unrelated photo"):
        apply_family("collage", real_photos()[0], 0, ())
    with pytest.raises(KeyError, match="known: crop"):
        apply_family("sharpen", real_photos()[0], 0)
