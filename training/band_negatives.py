"""Band negatives (paper §4.1): candidates whose similarity to the query under the *untrained* model lies in a band
(0.5–0.7 by default) — similar enough to be hard, not so similar that they are likely unlabelled positives.
"""

from __future__ import annotations

import numpy as np
import torch

from encoder.compact import CompactUniNote


@torch.no_grad()
def band_negatives(model: CompactUniNote, query_feats: torch.Tensor, candidate_feats: torch.Tensor,
                   exclude: np.ndarray, band: tuple[float, float], k: int, seed: int = 0) -> np.ndarray:
    """For each query, k candidate indices drawn from those whose untrained-model cosine is inside `band`.

    query_feats: (Q, 1280) and candidate_feats: (C, 1280) whole-image GeM features (any float dtype);
    exclude: (Q,) int64 candidate index that is the query's own source (never a negative; -1 = none).
    When fewer than k lie in the band, the rest are the most similar candidates below band[1].
    Returns (Q, k) int64; -1 where not even that many candidates exist.
    """
    q = model.embed_regions(query_feats.float())  # (Q, D)
    c = model.embed_regions(candidate_feats.float())  # (C, D)
    sims = (q @ c.T).numpy()  # (Q, C)
    lo, hi = band
    rng = np.random.default_rng(seed)
    out = np.full((len(sims), k), -1, dtype=np.int64)
    for i, row in enumerate(sims):
        row = row.copy()
        if exclude[i] >= 0:
            row[exclude[i]] = -np.inf
        inside = np.flatnonzero((row >= lo) & (row <= hi))
        chosen = list(rng.choice(inside, size=min(k, len(inside)), replace=False)) if len(inside) else []
        if len(chosen) < k:
            below = np.argsort(-np.where(row < hi, row, -np.inf))
            chosen += [int(j) for j in below if j not in chosen and np.isfinite(row[j])][: k - len(chosen)]
        out[i, : len(chosen)] = chosen
    return out
