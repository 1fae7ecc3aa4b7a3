"""Band negatives (paper §4.1): candidates whose similarity to the query under the *untrained* model lies in a band
(0.5–0.7 by default) — similar enough to be hard, not so similar that they are likely unlabelled positives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch

if TYPE_CHECKING:
    from training.sft_config import SFTConfig
    from training.sft_corpus import Corpus
    from training.sft_task import SFTBackbone


def band_negatives(queries: torch.Tensor, candidates: torch.Tensor, exclude: np.ndarray,
                   band: tuple[float, float], k: int, seed: int = 0) -> np.ndarray:
    """For each query, k candidate indices drawn from those whose cosine is inside `band`.

    queries: (Q, D) and candidates: (C, D) L2-normalised embeddings of the untrained model; exclude: (Q,) int64
    candidate index that is the query's own source (never a negative; -1 = none).
    When fewer than k lie in the band, the rest are the most similar candidates below band[1].
    Returns (Q, k) int64; -1 where not even that many candidates exist.
    """
    sims = (queries.float() @ candidates.float().T).cpu().numpy()  # (Q, C)
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


@torch.no_grad()
def embed_in_chunks(embed: Callable[[list], torch.Tensor], items: Sequence, chunk: int = 64) -> torch.Tensor:
    """embed(items[s : s + chunk]) for every chunk, without gradients, concatenated: (len(items), D)."""
    items = list(items)
    return torch.cat([embed(items[s : s + chunk]) for s in range(0, len(items), chunk)])


@torch.no_grad()
def training_band_negatives(backbone: "SFTBackbone", corpus: "Corpus", cfg: "SFTConfig") -> np.ndarray:
    """(P, K) photo indices: band negatives of each training photo's first edited view among the originals,
    by the backbone as it is now (call it before training: the untrained model)."""
    originals = corpus.original_view
    cand_photos = np.flatnonzero(np.array(originals) >= 0)
    cand = embed_in_chunks(backbone.embed_views, [originals[p] for p in cand_photos])  # (C, D)
    query_views = [(ev[0] if ev else max(originals[p], 0)) for p, ev in enumerate(corpus.edited_views)]
    queries = embed_in_chunks(backbone.embed_views, query_views)  # (P, D)
    pos = {int(p): i for i, p in enumerate(cand_photos)}
    exclude = np.array([pos.get(p, -1) for p in range(len(corpus.photos))])
    local = band_negatives(queries, cand, exclude, cfg.loss.band, cfg.loss.band_negatives, seed=cfg.train.seed)
    return np.where(local >= 0, cand_photos[np.clip(local, 0, None)], -1)
