"""InfoNCE with several (weighted) positives per query: the SSCD contrastive loss over views in a batch.

SSCD (Pizzi et al., CVPR 2022, §3.2; `sscd/lib/losses` "contrastive entropy"): every augmented view is a query;
the other views of the same photo are its positives, every other view in the batch a negative. Mixup/CutMix views
(training.copy_mix) are queries whose positives are the views of BOTH source photos, weighted by the mixing ratio.

loss_q = -sum_k w_qk log softmax_k(q . k / T) / sum_k w_qk, averaged over queries; a key masked for a query (the
query itself) is left out of its softmax.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class MultiPositiveInfoNCELoss(nn.Module):
    """forward(queries (Q, D), keys (K, D), positive_weights (Q, K) float >= 0, *, mask (Q, K) bool | None)
    -> scalar. Inputs L2-normalised; mask=True removes a key from that query's softmax (its own row).
    Raises ValueError on shape mismatch or a query with no positive weight."""

    def __init__(self, temperature: float = 0.05):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def forward(self, queries: Tensor, keys: Tensor, positive_weights: Tensor, *, mask: Tensor | None = None) -> Tensor:
        Q, K = queries.shape[0], keys.shape[0]
        if queries.ndim != 2 or keys.ndim != 2 or queries.shape[1] != keys.shape[1]:
            raise ValueError(f"queries (Q, D) and keys (K, D) must share D, got {tuple(queries.shape)}, "
                             f"{tuple(keys.shape)}")
        if positive_weights.shape != (Q, K):
            raise ValueError(f"positive_weights must be {(Q, K)}, got {tuple(positive_weights.shape)}")
        w = positive_weights.to(queries.dtype)
        if mask is not None:
            w = w.masked_fill(mask, 0.0)
        total = w.sum(dim=1)  # (Q,)
        if (total <= 0).any():
            raise ValueError(f"{int((total <= 0).sum())} queries have no positive key")
        logits = queries @ keys.T / self.temperature  # (Q, K)
        if mask is not None:
            logits = logits.masked_fill(mask, float("-inf"))
        log_p = logits.log_softmax(dim=1).masked_fill(w == 0, 0.0)  # (Q, K); avoids 0 * -inf
        return (-(w * log_p).sum(dim=1) / total).mean()
