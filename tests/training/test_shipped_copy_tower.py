"""The shipped copy-trained image tower (encoder/checkpoints/copy_tower, optional: the product's default stays the
ImageNet tower): fp16 trunk + whitening with a model card, loaded by name, and on real photos that no training run
saw (scikit-image) every edited copy, paste and collage cell included, finds its source photo."""

from __future__ import annotations

import numpy as np
import torch

from encoder.config import CompactConfig
from encoder.copy_tower_weights import COPY_TOWER_FILE
from encoder.pooling import gem
from encoder.towers import ImageTower
from tests.training.sft_support import real_photos
from training.copy_edits import apply_family


def test_shipped_copy_tower_is_small_fp16_with_a_model_card_and_not_the_default():
    folder = COPY_TOWER_FILE.parent
    assert sorted(p.name for p in folder.iterdir()) == ["MODEL_CARD.md", "tower.safetensors"]
    assert COPY_TOWER_FILE.stat().st_size < 10 * 2**20
    tower = ImageTower("efficientnet-lite0-copy", 224)
    assert tower.whitening is not None and tower.whitening.matrix.shape == (512, 1280)
    card = (folder / "MODEL_CARD.md").read_text(encoding="utf-8")
    for needle in ("training/configs/copy_tower_cpu.toml", "| ImageNet Lite0 GeM |", "µAP", "not the default"):
        assert needle in card, needle
    assert CompactConfig().image_tower == "efficientnet-lite0"


def test_edited_copies_find_their_source_with_the_shipped_tower():
    torch.set_num_threads(2)
    tower = ImageTower("efficientnet-lite0-copy", 224)
    photos = list(real_photos())
    families = ["jpeg", "crop", "rotate", "blur", "combo", "screenshot"]
    copies = [apply_family(f, photos[i], seed=i, others=photos[6:]) for i, f in enumerate(families)]
    with torch.no_grad():
        def desc(images):  # (N, 512) whitened GeM + L2
            fmap = tower(tower.preprocess(images))  # (N, 1280, 7, 7)
            g = gem(fmap, p=3.0)  # (N, 1280)
            return tower.whitening(torch.nn.functional.normalize(g, dim=-1))
        sim = desc(copies) @ desc(photos).T  # (6, 12)
    assert np.array_equal(sim.argmax(dim=1).numpy(), np.arange(len(copies)))
