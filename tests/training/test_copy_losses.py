"""training/losses KoLeo and multi-positive InfoNCE: values on small known inputs and a direct computation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from training.losses import KoLeoLoss, MultiPositiveInfoNCELoss


def test_koleo_on_the_four_axis_points_is_minus_log_sqrt2():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])  # every nearest neighbour at sqrt(2)
    assert KoLeoLoss()(x).item() == pytest.approx(-math.log(math.sqrt(2.0)), rel=1e-6)


def test_koleo_uses_each_points_nearest_other_point():
    a = torch.tensor([1.0, 0.0])
    b = F.normalize(torch.tensor([1.0, 0.1]), dim=0)
    c = torch.tensor([-1.0, 0.0])
    x = torch.stack([a, b, c])
    d_ab, d_bc = (a - b).norm(), (b - c).norm()
    expected = -(torch.log(d_ab) + torch.log(d_ab) + torch.log(min(d_bc, (a - c).norm()))) / 3
    assert KoLeoLoss()(x).item() == pytest.approx(expected.item(), rel=1e-5)


def test_koleo_is_lower_for_spread_points_and_its_gradient_spreads_them():
    close = F.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.05], [1.0, -0.05]]), dim=1)
    spread = F.normalize(torch.tensor([[1.0, 0.0], [-0.5, 0.87], [-0.5, -0.87]]), dim=1)
    assert KoLeoLoss()(spread) < KoLeoLoss()(close)
    x = close.clone().requires_grad_(True)
    KoLeoLoss()(x).backward()
    moved = F.normalize(x.detach() - 0.01 * x.grad, dim=1)
    assert KoLeoLoss()(moved) < KoLeoLoss()(close)


def test_koleo_rejects_a_single_row():
    with pytest.raises(ValueError, match="N >= 2"):
        KoLeoLoss()(torch.ones(1, 4))


def test_one_positive_per_query_equals_cross_entropy():
    q = F.normalize(torch.randn(5, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    k = F.normalize(torch.randn(5, 8, generator=torch.Generator().manual_seed(1)), dim=1)
    loss = MultiPositiveInfoNCELoss(0.1)(q, k, torch.eye(5))
    assert loss.item() == pytest.approx(F.cross_entropy(q @ k.T / 0.1, torch.arange(5)).item(), rel=1e-6)


def test_two_views_per_photo_with_self_mask_matches_a_direct_sum():
    x = F.normalize(torch.randn(4, 6, generator=torch.Generator().manual_seed(2)), dim=1)  # photos 0,0,1,1
    inst = torch.tensor([0, 0, 1, 1])
    eye = torch.eye(4, dtype=torch.bool)
    w = ((inst[:, None] == inst[None, :]) & ~eye).float()
    loss = MultiPositiveInfoNCELoss(0.05)(x, x, w, mask=eye)
    expected = 0.0
    for i in range(4):
        others = [j for j in range(4) if j != i]
        logits = torch.stack([x[i] @ x[j] / 0.05 for j in others])
        pos = others.index(i ^ 1)  # the other view of the same photo
        expected += -logits.log_softmax(0)[pos]
    assert loss.item() == pytest.approx(expected.item() / 4, rel=1e-5)


def test_weighted_positives_average_the_log_probabilities():
    q = torch.tensor([[1.0, 0.0]])
    k = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    w = torch.tensor([[0.25, 0.75, 0.0]])
    logp = (q @ k.T / 0.5).log_softmax(1)[0]
    expected = -(0.25 * logp[0] + 0.75 * logp[1])
    assert MultiPositiveInfoNCELoss(0.5)(q, k, w).item() == pytest.approx(expected.item(), rel=1e-6)


def test_multi_positive_rejects_a_query_without_positive_and_bad_shapes():
    q, k = torch.ones(2, 3), torch.ones(2, 3)
    with pytest.raises(ValueError, match="no positive"):
        MultiPositiveInfoNCELoss()(q, k, torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="positive_weights"):
        MultiPositiveInfoNCELoss()(q, k, torch.ones(3, 2))
    with pytest.raises(ValueError, match="temperature"):
        MultiPositiveInfoNCELoss(0.0)
