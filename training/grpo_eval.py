"""Note-to-note ranking quality on graded pools: P@5 and NDCG@10 (stage 2's headline numbers).

Each held-out pool's query (half A of a note) searches the whole held-out library (whole notes + every
pool's graded targets and noise); relevance is the pool's grade (0 for anything else). Metrics are
computed at every requested Matryoshka dim (MRL prefix, L2-renormalised). The paper reports P@5 on
note-to-note retrieval (§5, +3.4% after GRPO); NDCG uses the standard gain 2^grade - 1 and log2 discount
(Järvelin & Kekäläinen 2002).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from training.graded_pools import GradedPool, PoolNote, excluded_rows
from training.grpo_features import prefix_sims
from training.pool_encoder import PoolEncoder, embed_all


def precision_at_k(grades: Sequence[int], k: int) -> float:
    """Fraction of the top k (grades in ranked order) that are relevant (grade > 0). Raises ValueError for k < 1."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return sum(1 for g in list(grades)[:k] if g > 0) / k


def ndcg_at_k(grades: Sequence[int], all_grades: Sequence[int], k: int) -> float:
    """NDCG@k of a ranking. grades: the ranked list's grades; all_grades: every relevant item's grade
    (the ideal ranking sorts these). 0.0 when nothing is relevant."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    dcg = sum((2**g - 1) / math.log2(p + 2) for p, g in enumerate(list(grades)[:k]))
    ideal = sorted((g for g in all_grades if g > 0), reverse=True)[:k]
    idcg = sum((2**g - 1) / math.log2(p + 2) for p, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


@dataclass(frozen=True)
class RankingMetrics:
    """Mean over queries at one Matryoshka dim: P@5, NDCG@10, Recall@10 (of the graded targets),
    top1_best (the top-1 candidate is the best-graded target)."""

    dim: int
    p_at_5: float
    ndcg_at_10: float
    recall_at_10: float
    top1_best: float
    n_queries: int
    library_size: int


@torch.no_grad()
def evaluate_ranking(
    encoder: PoolEncoder,
    pools: Sequence[GradedPool],
    library: Sequence[PoolNote],
    dims: Sequence[int] | None = None,
) -> list[RankingMetrics]:
    """Rank `library` (it must contain every pool's targets) for every pool query; metrics per dim.

    encoder: any backbone's training.pool_encoder.PoolEncoder. dims default to its Matryoshka dims.
    Raises ValueError when a pool target is not in the library or a dim exceeds the model's.
    """
    dims = tuple(dims or encoder.dims)
    if any(d > encoder.dims[-1] for d in dims):
        raise ValueError(f"dims {dims} exceed the model dim {encoder.dims[-1]}")
    lib_pos = {n.content: i for i, n in enumerate(library)}  # by content: see graded_pools.pool_library
    for p in pools:
        missing = [t.note_id for t in p.targets if t.content not in lib_pos]
        if missing:
            raise ValueError(f"pool {p.query.note_id!r}: targets {missing} are not in the library")
    q = embed_all(encoder, [p.query for p in pools]).cpu()  # (Q, D)
    lib = embed_all(encoder, library).cpu()  # (L, D)
    grade = torch.zeros(len(pools), len(library), dtype=torch.long)  # (Q, L)
    for i, p in enumerate(pools):
        for t, g in zip(p.targets, p.grades):
            grade[i, lib_pos[t.content]] = g
    out = []
    excluded = excluded_rows(pools, library)
    for d in dims:
        sims = prefix_sims(q, lib, d)  # (Q, L)
        for i, rows in enumerate(excluded):
            sims[i, rows] = float("-inf")  # the query's own note cut by another pool: not ranked
        top = sims.topk(min(10, len(library)), dim=1).indices  # (Q, 10)
        ranked = torch.gather(grade, 1, top)  # (Q, 10)
        p5 = ndcg = rec = top1 = 0.0
        for i, p in enumerate(pools):
            r = ranked[i].tolist()
            p5 += precision_at_k(r, 5)
            ndcg += ndcg_at_k(r, p.grades, 10)
            rec += sum(1 for g in r if g > 0) / len(p.targets)
            top1 += float(r[0] == max(p.grades))
        n = max(len(pools), 1)
        out.append(RankingMetrics(d, p5 / n, ndcg / n, rec / n, top1 / n, len(pools), len(library)))
    return out
