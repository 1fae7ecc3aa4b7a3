"""training/copy_mix.py and training/copy_whitening.py: mixing weights and a whitened background."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.copy_mix import mix_views
from training.copy_whitening import fit_whitening


def test_mixed_views_put_their_weight_on_both_source_photos():
    feats = torch.arange(6 * 2 * 4 * 4, dtype=torch.float32).reshape(6, 2, 4, 4)
    instance = torch.tensor([0, 0, 1, 1, 2, 2])
    mixed, w = mix_views(feats, instance, 8, np.random.default_rng(0))
    assert mixed.shape == (8, 2, 4, 4) and w.shape == (8, 6)
    assert torch.allclose(w.sum(dim=1), torch.ones(8))
    for row in w:
        photos = {int(instance[j]) for j in torch.nonzero(row).flatten()}
        assert len(photos) == 2  # exactly two source photos, each view of a photo weighted equally
        for p in photos:
            vals = row[instance == p]
            assert torch.allclose(vals, vals[0].expand_as(vals)) and 0.25 <= vals.sum() <= 0.75


def test_cutmix_keeps_the_reported_share_of_the_first_view():
    feats = torch.cat([torch.zeros(2, 1, 8, 8), torch.ones(2, 1, 8, 8)])  # photo 0 = zeros, photo 1 = ones
    instance = torch.tensor([0, 0, 1, 1])
    mixed, w = mix_views(feats, instance, 20, np.random.default_rng(1), cutmix_prob=1.0)
    for m, row in zip(mixed, w):
        share_of_ones = m.mean().item()
        assert row[instance == 1].sum().item() == pytest.approx(share_of_ones, abs=1e-6)


def test_no_mix_when_the_batch_is_one_photo():
    mixed, w = mix_views(torch.ones(2, 3, 4, 4), torch.tensor([5, 5]), 3, np.random.default_rng(0))
    assert mixed.shape[0] == 0 and w.shape == (0, 2)


def test_whitening_makes_the_background_covariance_the_identity():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 16, generator=g) @ torch.randn(16, 16, generator=g) + 3.0  # correlated, off-centre
    w = fit_whitening(x, 8, eps=0.0)
    y = (x - w.mean) @ w.matrix.T  # (N, 8) before the final L2
    cov = y.T @ y / (len(y) - 1)
    assert torch.allclose(cov, torch.eye(8), atol=1e-3)
    assert w(x).norm(dim=1).allclose(torch.ones(len(x)))
    with pytest.raises(ValueError, match="cannot fit"):
        fit_whitening(x, 32)
