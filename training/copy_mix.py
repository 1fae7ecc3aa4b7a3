"""Mixup and CutMix across views (SSCD §3.4, `sscd/transforms/mixup.py`), applied to the cached feature maps.

Each mixed query combines view a (photo i) with view b of another photo j: CutMix pastes a box of b covering a
fraction (1 - lam) of the map into a; Mixup blends lam * a + (1 - lam) * b. Its positives are the keys (the
un-mixed views) of photo i with total weight lam and of photo j with total weight 1 - lam. On the CPU recipe the
maps are the frozen prefix's features (stride 16), not pixels: the same geometry at a coarser grid.
"""

from __future__ import annotations

import numpy as np
import torch


def mix_views(feats: torch.Tensor, instance: torch.Tensor, n_mix: int, rng: np.random.Generator,
              cutmix_prob: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """feats (N, C, h, w), instance (N,) int64 photo ids -> (mixed (M, C, h, w), positive weights (M, N) float32).

    M = n_mix (0 when every view shows the same photo). lam ~ U(0.3, 0.7). Weights: lam / n_i on each view of
    photo i, (1 - lam) / n_j on each view of photo j.
    """
    N, C, h, w = feats.shape
    mixed, weights = [], []
    for _ in range(n_mix):
        a = int(rng.integers(N))
        others = torch.nonzero(instance != instance[a]).flatten()
        if len(others) == 0:
            break
        b = int(others[int(rng.integers(len(others)))])
        lam = float(rng.uniform(0.3, 0.7))
        if rng.random() < cutmix_prob:
            bh, bw = max(1, round(h * np.sqrt(1 - lam))), max(1, round(w * np.sqrt(1 - lam)))
            y, x = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
            m = feats[a].clone()
            m[:, y : y + bh, x : x + bw] = feats[b, :, y : y + bh, x : x + bw]
            lam = 1.0 - bh * bw / (h * w)  # the area actually kept from a
        else:
            m = lam * feats[a] + (1 - lam) * feats[b]
        mixed.append(m)
        wi = (instance == instance[a]).float()
        wj = (instance == instance[b]).float()
        weights.append(lam * wi / wi.sum() + (1 - lam) * wj / wj.sum())
    if not mixed:
        return feats.new_zeros((0, C, h, w)), torch.zeros(0, N)
    return torch.stack(mixed), torch.stack(weights)
