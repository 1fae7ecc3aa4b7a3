"""The shipped copy-detection tower (encoder/checkpoints/copy_tower): small fp16 file with a model card, selectable
by CompactConfig.image_tower, and on real photos it never trained on (scikit-image's) hard copies find their source."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from encoder.compact import CompactUniNote
from encoder.config import CompactConfig
from encoder.copy_tower_weights import COPY_TOWER_FILE
from encoder.pooling import gem
from encoder.towers import ImageTower, image_tower
from tests.training.sft_support import real_photos
from training.copy_edits import apply_family

pytestmark = pytest.mark.skipif(not COPY_TOWER_FILE.is_file(), reason=f"no shipped copy tower at {COPY_TOWER_FILE}")


def _descriptors(tower: ImageTower, images) -> torch.Tensor:
    with torch.no_grad():
        d = F.normalize(gem(tower(tower.preprocess(images))), dim=-1)  # (N, 1280)
    return tower.whitening(d) if tower.whitening is not None else d


def test_shipped_file_is_small_fp16_with_a_model_card():
    from safetensors import safe_open

    assert COPY_TOWER_FILE.stat().st_size < 20 * 2**20
    with safe_open(str(COPY_TOWER_FILE), framework="pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    card = (COPY_TOWER_FILE.parent / "MODEL_CARD.md").read_text(encoding="utf-8")
    for needle in ("training/configs/copy_tower_cpu.toml", "µAP", "ImageNet", "CPU"):
        assert needle in card, needle


def test_compact_config_selects_the_copy_tower_and_keeps_the_old_one_by_default():
    assert CompactConfig().image_tower == "efficientnet-lite0"
    model = CompactUniNote(CompactConfig(image_tower="efficientnet-lite0-copy"))
    assert model.image_tower.whitening is not None
    feats = model.region_features(list(real_photos()[:2]))
    assert feats.shape == (2, len(model.boxes), 1280) and torch.isfinite(feats).all()
    assert image_tower().whitening is None


def test_hard_copies_of_unseen_photos_find_their_source():
    photos = list(real_photos())
    tower = ImageTower("efficientnet-lite0-copy")
    refs = _descriptors(tower, photos)  # (12, d)
    others = [photos[(i + 5) % len(photos)] for i in range(3)]
    hits = 0
    cases = [(i, fam) for i in (0, 1, 2, 3, 7, 9) for fam in ("crop", "screenshot", "combo", "pad_stripes")]
    for i, fam in cases:
        q = _descriptors(tower, [apply_family(fam, photos[i], 100 + i, others)])
        hits += int((q @ refs.T).argmax()) == i
    assert hits >= int(0.8 * len(cases)), hits
