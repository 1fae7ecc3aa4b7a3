"""Matryoshka Representation Learning (Kusupati et al. 2022) as a wrapper around any embedding loss
(sentence-transformers `MatryoshkaLoss`): the base loss is applied to the first d components of every embedding,
L2-renormalised, for each nested dim d, and the results are summed with weights.
"""

from __future__ import annotations

from typing import Sequence

import torch.nn.functional as F
from torch import Tensor, nn


def shrink(embeddings: Tensor, dim: int) -> Tensor:
    """(..., D) -> (..., dim): the Matryoshka prefix, L2-renormalised. Raises ValueError if dim > D or dim < 1."""
    if not 1 <= dim <= embeddings.shape[-1]:
        raise ValueError(f"Matryoshka dim {dim} must be in [1, {embeddings.shape[-1]}]")
    return F.normalize(embeddings[..., :dim], dim=-1)


class MatryoshkaLoss(nn.Module):
    """Wrap `base`: forward(*embeddings, **kwargs) = Σ_d w_d · base(*[shrink(e, d)], **kwargs).

    Positional arguments are embeddings (last axis = the full dim; None passes through); keyword arguments
    (masks, groups, teacher similarities) are passed unchanged. dims: the nested dims, any order, none above the
    embeddings' dim (checked at call time); weights: one per dim (default all 1).
    Also returns nothing else: the per-dim losses of the last call are in `last_losses` (dim -> float).
    """

    def __init__(self, base: nn.Module, dims: Sequence[int], weights: Sequence[float] | None = None):
        super().__init__()
        dims = tuple(int(d) for d in dims)
        if not dims or len(set(dims)) != len(dims) or min(dims) < 1:
            raise ValueError(f"dims must be distinct positive ints, got {dims}")
        weights = tuple(float(w) for w in (weights if weights is not None else [1.0] * len(dims)))
        if len(weights) != len(dims):
            raise ValueError(f"{len(weights)} weights for {len(dims)} dims")
        self.base, self.dims, self.weights = base, dims, weights
        self.last_losses: dict[int, float] = {}

    def forward(self, *embeddings: Tensor | None, **kwargs) -> Tensor:
        full = max(e.shape[-1] for e in embeddings if e is not None)
        if max(self.dims) > full:
            raise ValueError(f"Matryoshka dim {max(self.dims)} exceeds the embedding dim {full}")
        total, self.last_losses = None, {}
        for d, w in zip(self.dims, self.weights):
            loss = self.base(*[None if e is None else shrink(e, d) for e in embeddings], **kwargs)
            self.last_losses[d] = float(loss.detach())
            total = w * loss if total is None else total + w * loss
        return total
