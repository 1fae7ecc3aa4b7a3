"""training/losses: each loss against a direct computation (two routes to one answer)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from training.losses import InfoNCELoss, JSSoftTargetLoss, MatryoshkaLoss, shrink


def _unit(*shape, seed=0):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_infonce_equals_cross_entropy_with_hard_negatives_and_groups():
    q, p, h = _unit(6, 16), _unit(6, 16, seed=1), _unit(6, 2, 16, seed=2)
    groups = torch.tensor([0, 0, 1, 2, 3, 4])
    loss = InfoNCELoss(0.1)(q, p, h, hard_mask=torch.tensor([[True, False]] * 6), groups=groups)
    expected = 0.0
    for i in range(6):
        cands = [j for j in range(6) if j == i or groups[j] != groups[i]]
        logits = torch.cat([q[i] @ p[cands].T, (q[i] @ h[i, :1].T).reshape(1)]) / 0.1
        expected += -logits.log_softmax(0)[cands.index(i)]
    assert loss.item() == pytest.approx(expected.item() / 6, rel=1e-5)


def test_infonce_symmetric_and_learnable_temperature():
    q, p = _unit(5, 8), _unit(5, 8, seed=3)
    loss_fn = InfoNCELoss(0.05, learnable=True, symmetric=True)
    loss = loss_fn(q, p)
    target = torch.arange(5)
    expected = 0.5 * (F.cross_entropy(q @ p.T / 0.05, target) + F.cross_entropy(p @ q.T / 0.05, target))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    assert loss_fn.log_scale.grad is not None
    with pytest.raises(ValueError, match="temperature"):
        InfoNCELoss(0.0)
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        loss_fn(q, p[:3])


def test_js_soft_target_by_formula():
    q, c = _unit(4, 8), _unit(7, 8, seed=4)
    teacher = torch.rand(4, 7, generator=torch.Generator().manual_seed(5))
    loss = JSSoftTargetLoss(0.1, 0.2)(q, c, teacher)
    P, Q = (q @ c.T / 0.1).softmax(1), (teacher / 0.2).softmax(1)
    M = 0.5 * (P + Q)
    js = 0.5 * (P * (P / M).log()).sum(1) + 0.5 * (Q * (Q / M).log()).sum(1)
    assert loss.item() == pytest.approx(js.mean().item(), rel=1e-5)
    assert 0 <= loss.item() <= math.log(2)


def test_js_is_zero_when_student_matches_teacher_and_finite_with_masks():
    q, c = _unit(3, 8), _unit(5, 8, seed=6)
    loss_fn = JSSoftTargetLoss(0.1, 0.1)
    assert loss_fn(q, c, q @ c.T).item() == pytest.approx(0.0, abs=1e-6)
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[:, 0] = False
    assert torch.isfinite(loss_fn(q, c, torch.zeros(3, 5), mask=mask))


def test_matryoshka_sums_the_base_loss_at_every_prefix():
    q, p = _unit(6, 32), _unit(6, 32, seed=7)
    base = InfoNCELoss(0.1)
    mrl = MatryoshkaLoss(base, dims=(8, 16, 32), weights=(0.5, 1.0, 2.0))
    expected = sum(w * base(shrink(q, d), shrink(p, d)) for d, w in zip((8, 16, 32), (0.5, 1.0, 2.0)))
    assert mrl(q, p).item() == pytest.approx(expected.item(), rel=1e-6)
    assert set(mrl.last_losses) == {8, 16, 32}


def test_shrink_and_matryoshka_validate_dims():
    x = _unit(2, 16)
    assert torch.allclose(shrink(x, 4).norm(dim=-1), torch.ones(2))
    with pytest.raises(ValueError, match="Matryoshka dim 32"):
        shrink(x, 32)
    with pytest.raises(ValueError, match="exceeds"):
        MatryoshkaLoss(InfoNCELoss(), dims=(8, 64))(x, x)
    with pytest.raises(ValueError, match="weights"):
        MatryoshkaLoss(InfoNCELoss(), dims=(8, 16), weights=(1.0,))


def test_js_with_a_mask_has_finite_gradients():
    q = _unit(4, 8).requires_grad_()
    teacher = q.detach() @ q.detach().T
    loss = JSSoftTargetLoss(0.05, 0.05)(q, q, teacher + 0.1 * torch.rand(4, 4), mask=~torch.eye(4, dtype=torch.bool))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(q.grad).all()
