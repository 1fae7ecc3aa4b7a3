"""training/text_head_isometry.py: the Procrustes head keeps every cosine of its input at full dim, is the
isometry nearest the trained projection, and refuses a head that cannot be one."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from encoder.heads import ProjectionHead
from training.text_head_isometry import isometric_text_head


def test_the_isometric_head_keeps_cosines_and_stays_near_the_trained_projection():
    torch.manual_seed(0)
    head = ProjectionHead(48, 64, 32)
    with torch.no_grad():  # a "trained" head: a bent projection and a live residual MLP
        head.proj.weight.add_(0.3 * torch.randn_like(head.proj.weight))
        head.mlp[-1].weight.normal_(0, 0.2)
    trained = head.proj.weight.detach().clone()  # (64, 48)
    x = torch.randn(20, 48)  # (N, 48)
    cos_in = F.normalize(x, dim=-1) @ F.normalize(x, dim=-1).T  # (N, N)
    before = head(x) @ head(x).T
    assert not torch.allclose(before, cos_in, atol=1e-3)
    isometric_text_head(head)
    after = head(x) @ head(x).T  # (N, N)
    assert torch.allclose(after, cos_in, atol=1e-5)
    w = head.proj.weight.detach()
    assert torch.allclose(w.T @ w, torch.eye(48), atol=1e-5)
    q, _ = torch.linalg.qr(trained)  # another isometry: further from the trained weights than Procrustes
    assert torch.linalg.norm(w - trained) <= torch.linalg.norm(q - trained) + 1e-6


def test_no_isometry_into_a_smaller_space():
    with pytest.raises(ValueError, match="out_dim >= in_dim"):
        isometric_text_head(ProjectionHead(64, 32, 16))


def test_alpha_pulls_the_trained_head_part_way():
    torch.manual_seed(1)
    head = ProjectionHead(16, 24, 8)
    with torch.no_grad():
        head.proj.weight.add_(0.5 * torch.randn_like(head.proj.weight))
        head.proj.bias.fill_(0.1)
    trained = head.proj.weight.detach().clone()  # (24, 16)
    u, _, vh = torch.linalg.svd(trained.double(), full_matrices=False)
    isometric_text_head(head, alpha=0.25)
    expected = 0.75 * trained + 0.25 * (u @ vh).float()
    assert torch.allclose(head.proj.weight, expected, atol=1e-5)
    assert torch.allclose(head.proj.bias, torch.full_like(head.proj.bias, 0.075))
    with pytest.raises(ValueError, match="alpha"):
        isometric_text_head(head, alpha=1.5)
