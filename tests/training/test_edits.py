"""training/edits.py: every copy edit on a real photo is deterministic in its seed, returns RGB and changes it."""

from __future__ import annotations

import numpy as np
import pytest

from tests.training.sft_support import real_photos
from training.edits import EDITS, apply_edit, random_edit

EXPECTED = {"crop", "overlay_text", "overlay_emoji", "jpeg", "screenshot", "hflip", "colour", "blur", "rotate",
            "pad", "rescale", "collage", "paste_into", "mixed"}


def test_registry_has_the_disc21_families():
    assert EXPECTED <= set(EDITS)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_edit_is_deterministic_rgb_and_changes_the_photo(name):
    photo = real_photos()[2]  # chelsea
    a, b = apply_edit(name, photo, seed=7), apply_edit(name, photo, seed=7)
    assert a.mode == "RGB" and min(a.size) >= 8
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert a.size != photo.size or not np.array_equal(np.asarray(a), np.asarray(photo))


def test_different_seeds_give_different_copies():
    photo = real_photos()[0]
    a, b = apply_edit("crop", photo, seed=1), apply_edit("crop", photo, seed=2)
    assert a.size != b.size or not np.array_equal(np.asarray(a), np.asarray(b))


def test_unknown_edit_names_the_known_ones():
    with pytest.raises(KeyError, match="known: .*crop"):
        apply_edit("sharpen_all", real_photos()[0], seed=0)
    with pytest.raises(KeyError, match="unknown edits"):
        random_edit(real_photos()[0], np.random.default_rng(0), names=("crop", "nope"))


def test_random_edit_draws_from_the_given_names():
    name, img = random_edit(real_photos()[1], np.random.default_rng(3), names=("hflip",))
    assert name == "hflip" and np.array_equal(np.asarray(img), np.asarray(real_photos()[1])[:, ::-1])
