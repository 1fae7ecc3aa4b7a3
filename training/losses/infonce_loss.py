"""InfoNCE (Oord et al. 2018; CLIP / sentence-transformers MultipleNegativesRankingLoss) with extra negatives.

Each query's positive is the candidate at its own row; every other row's candidate is an in-batch negative,
plus optional per-query hard negatives (rule and band negatives, paper §4.1). Candidates that are not real
negatives (another view of the same source) are masked out with `groups`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class InfoNCELoss(nn.Module):
    """Cross-entropy over cosine logits / temperature.

    temperature: initial (learnable=True, stored as log logit scale, clamped to scale <= 100) or fixed value.
    symmetric: also the candidate→query direction over in-batch queries (CLIP), averaged with the other.
    forward(queries (B, D), positives (B, D), hard_negatives (B, K, D) | None, *, hard_mask (B, K) bool | None,
    groups (B,) int64 | None) -> scalar loss. Inputs are L2-normalised. With groups, an in-batch candidate j != i
    with groups[j] == groups[i] is not counted as a negative. Raises ValueError on mismatched shapes.
    """

    def __init__(self, temperature: float = 0.05, learnable: bool = False, symmetric: bool = False):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        log_scale = torch.tensor(math.log(1.0 / temperature))
        if learnable:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)
        self.symmetric = symmetric

    @property
    def scale(self) -> Tensor:
        return self.log_scale.clamp(max=math.log(100.0)).exp()

    def forward(self, queries: Tensor, positives: Tensor, hard_negatives: Tensor | None = None, *,
                hard_mask: Tensor | None = None, groups: Tensor | None = None) -> Tensor:
        if queries.ndim != 2 or positives.shape != queries.shape:
            raise ValueError(f"queries and positives must both be (B, D), got {tuple(queries.shape)}, "
                             f"{tuple(positives.shape)}")
        B = queries.shape[0]
        scale = self.scale
        logits = scale * queries @ positives.T  # (B, B)
        if groups is not None:
            same = groups[:, None] == groups[None, :]  # (B, B)
            same.fill_diagonal_(False)
            logits = logits.masked_fill(same, float("-inf"))
        target = torch.arange(B, device=queries.device)
        row_logits = logits
        if hard_negatives is not None:
            if hard_negatives.ndim != 3 or hard_negatives.shape[0] != B or hard_negatives.shape[2] != queries.shape[1]:
                raise ValueError(f"hard_negatives must be (B, K, D), got {tuple(hard_negatives.shape)}")
            hard = scale * torch.einsum("bd,bkd->bk", queries, hard_negatives)  # (B, K)
            if hard_mask is not None:
                hard = hard.masked_fill(~hard_mask, float("-inf"))
            row_logits = torch.cat([logits, hard], dim=1)  # (B, B+K)
        loss = F.cross_entropy(row_logits, target)
        if self.symmetric:
            loss = 0.5 * (loss + F.cross_entropy(logits.T, target))
        return loss
