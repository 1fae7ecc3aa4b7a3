"""training/copy_head_init.py: a compact model on the copy tower whose image head IS the tower's whitening (the
SSCD descriptor) for the whole image and every crop, on real photos; text head and fusion carried over."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from encoder.checkpoint import load_checkpoint
from encoder.loading import DEFAULT_CHECKPOINT
from tests.training.sft_support import real_photos
from training.copy_head_init import COPY_TOWER, copy_tower_model


def test_image_head_is_the_copy_towers_whitening_and_text_is_carried_over():
    base = load_checkpoint(DEFAULT_CHECKPOINT)
    model = copy_tower_model(base)
    assert model.config.image_tower == COPY_TOWER and model.config.text_locals == "head"
    photos = list(real_photos())[:4]
    with torch.no_grad():
        feats = model.region_features(photos)  # (4, R, 1280)
        got = model.embed_regions(feats)  # (4, R, 512)
        want = model.image_tower.whitening(F.normalize(feats, dim=-1))  # (4, R, 512)
        assert torch.allclose(got, want, atol=1e-5)
        # a different tower and head than the ImageNet model's: the vectors do change
        assert not torch.allclose(got, base.embed_regions(base.region_features(photos)), atol=1e-2)
        x = torch.randn(3, 384)
        assert torch.equal(model.embed_texts(x), base.embed_texts(x))  # text head copied
    for name, p in base.fusion.state_dict().items():
        assert torch.equal(model.fusion.state_dict()[name], p), name
