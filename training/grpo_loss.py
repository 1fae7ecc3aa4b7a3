"""The GRPO loss on an embedder (paper §3.3; DeepSeekMath's GRPO, trl's group-relative advantages).

A query's "group" is the G candidates retrieved for it; the policy is a softmax over their similarities,
π_θ(i) = softmax(s_i / τ). Each candidate gets a reward (training/rewards.py); advantages are
group-relative, A_i = (r_i - mean_G r) / (std_G r + ε); the loss is

    -mean_i(A_i · log π_θ(i)) + β · KL(π_θ ‖ π_ref),

π_ref being the same softmax over the frozen stage-1 model's similarities. The KL is exact (the group
is enumerated, no sampling estimator). Since the advantages sum to zero in a group, the gradient on
logit i is -A_i / G: above-average candidates are pulled up, the rest pushed down.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def group_advantages(rewards: Tensor, mask: Tensor | None = None, eps: float = 1e-4) -> Tensor:
    """(B, G) float rewards -> (B, G) float advantages (r - mean) / (std + eps) per group (row).

    mask: (B, G) bool, True where a candidate exists (groups shorter than G); masked entries get 0 and
    do not enter the mean or std. std is the population std (correction 0).
    """
    if rewards.dim() != 2:
        raise ValueError(f"rewards: expected (B, G), got shape {tuple(rewards.shape)}")
    if mask is None:
        mask = torch.ones_like(rewards, dtype=torch.bool)
    m = mask.to(rewards.dtype)  # (B, G)
    n = m.sum(dim=1, keepdim=True).clamp_min(1.0)  # (B, 1)
    mean = (rewards * m).sum(dim=1, keepdim=True) / n  # (B, 1)
    var = (((rewards - mean) * m) ** 2).sum(dim=1, keepdim=True) / n  # (B, 1)
    return (rewards - mean) / (var.sqrt() + eps) * m  # (B, G)


class GRPOLoss(nn.Module):
    """GRPO over candidate similarities.

    Args: temperature τ (> 0) of the policy softmax; beta β (>= 0) the KL weight; eps ε of the advantage.
    forward(similarities, ref_similarities, rewards, mask=None):
        similarities: (B, G) float, the trained model's cosine similarities query·candidate (with grad).
        ref_similarities: (B, G) float, the frozen reference model's (no grad needed).
        rewards: (B, G) float, per-candidate rewards.
        mask: (B, G) bool or None, True where a candidate exists (at least one per row).
    Returns (loss: scalar Tensor, stats: dict of detached scalar Tensors: pg_loss, kl, entropy, reward).
    Raises ValueError on mismatched shapes or a row with no candidate.
    """

    def __init__(self, temperature: float = 0.05, beta: float = 0.05, eps: float = 1e-4):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        self.temperature, self.beta, self.eps = temperature, beta, eps

    def forward(
        self, similarities: Tensor, ref_similarities: Tensor, rewards: Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        if similarities.dim() != 2:
            raise ValueError(f"similarities: expected (B, G), got shape {tuple(similarities.shape)}")
        for name, t in (("ref_similarities", ref_similarities), ("rewards", rewards)):
            if t.shape != similarities.shape:
                raise ValueError(f"{name}: shape {tuple(t.shape)} != similarities {tuple(similarities.shape)}")
        if mask is None:
            mask = torch.ones_like(similarities, dtype=torch.bool)
        elif mask.shape != similarities.shape:
            raise ValueError(f"mask: shape {tuple(mask.shape)} != similarities {tuple(similarities.shape)}")
        if not bool(mask.any(dim=1).all()):
            raise ValueError("mask: a group has no candidate")

        rewards = rewards.to(similarities.dtype)
        adv = group_advantages(rewards, mask, self.eps).detach()  # (B, G)
        neg_inf = torch.finfo(similarities.dtype).min
        logits = (similarities / self.temperature).masked_fill(~mask, neg_inf)  # (B, G)
        ref_logits = (ref_similarities.detach() / self.temperature).masked_fill(~mask, neg_inf)  # (B, G)
        logp = torch.log_softmax(logits, dim=1)  # (B, G)
        ref_logp = torch.log_softmax(ref_logits, dim=1)  # (B, G)
        m = mask.to(similarities.dtype)  # (B, G)
        n = m.sum(dim=1)  # (B,)

        pg = -((adv * logp * m).sum(dim=1) / n)  # (B,)
        p = logp.exp() * m  # (B, G)
        kl = (p * (logp - ref_logp)).sum(dim=1)  # (B,)  KL(π_θ ‖ π_ref), exact over the group
        loss = pg.mean() + self.beta * kl.mean()
        stats = {
            "pg_loss": pg.mean().detach(),
            "kl": kl.mean().detach(),
            "entropy": (-(p * logp).sum(dim=1)).mean().detach(),
            "reward": ((rewards * m).sum(dim=1) / n).mean().detach(),
        }
        return loss, stats
