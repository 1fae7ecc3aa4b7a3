"""Retrieval and copy-detection metrics, as typed results.

Copy detection follows the ISC 2021 / DISC21 evaluation (facebookresearch/sscd-copy-detection
`sscd/datasets/isc/metrics.py`): every (query, reference, score) prediction goes into ONE precision–recall curve
over all queries, distractor queries (with no true reference) included; µAP is the area under that curve with the
number of ground-truth pairs as the recall denominator, so a missed pair costs recall. Recall@P90 is the best
recall reached at precision >= 0.9.

Retrieval (task families): Recall@1 = share of queries whose top-1 candidate is relevant; Precision@5 = mean share
of relevant candidates among the top 5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CopyDetectionMetrics:
    """micro_ap: µAP in [0, 1]; recall_at_p90: recall at precision >= 0.9 (0 if never reached); threshold_at_p90:
    the score at that point (nan if never reached); recall_at_1: share of positive queries whose top-1 prediction
    is a true copy; n_queries / n_positive_pairs / n_predictions: what was scored."""

    micro_ap: float
    recall_at_p90: float
    threshold_at_p90: float
    recall_at_1: float
    n_queries: int
    n_positive_pairs: int
    n_predictions: int


@dataclass(frozen=True)
class RetrievalMetrics:
    """recall_at_1 and precision_at_5 in [0, 1] over n_queries queries."""

    recall_at_1: float
    precision_at_5: float
    n_queries: int


def _precision_recall(scores: np.ndarray, is_true: np.ndarray, n_positive: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.argsort(-scores, kind="stable")
    hits = is_true[order].astype(np.float64)
    tp = np.cumsum(hits)  # (P,)
    ranks = np.arange(1, len(hits) + 1, dtype=np.float64)
    return tp / ranks, tp / max(n_positive, 1), scores[order]


def micro_average_precision(scores: np.ndarray, is_true: np.ndarray, n_positive: int) -> float:
    """µAP of predictions. scores: (P,) float; is_true: (P,) bool; n_positive: ground-truth pairs (>= true hits).

    Area under the step PR curve: sum over true predictions, ranked by score, of precision at that rank, divided
    by n_positive (sscd's `average_precision` with the recall denominator = all ground-truth pairs).
    Raises ValueError on mismatched shapes or n_positive < number of true predictions.
    """
    scores, is_true = np.asarray(scores, dtype=np.float64), np.asarray(is_true, dtype=bool)
    if scores.shape != is_true.shape or scores.ndim != 1:
        raise ValueError(f"scores {scores.shape} and is_true {is_true.shape} must be equal 1-d shapes")
    if n_positive < int(is_true.sum()):
        raise ValueError(f"n_positive={n_positive} is below the {int(is_true.sum())} true predictions")
    if n_positive == 0:
        return 0.0
    precision, _, _ = _precision_recall(scores, is_true, n_positive)
    order = np.argsort(-scores, kind="stable")
    return float(precision[is_true[order]].sum() / n_positive)


def copy_detection_metrics(similarity: np.ndarray, truth: np.ndarray, top_k: int = 10) -> CopyDetectionMetrics:
    """ISC-style metrics from a full query × reference similarity matrix.

    similarity: (Q, R) float (higher = more similar; Hamming distances must be negated first);
    truth: (Q, R) bool, True where reference r is the source of query q; a query with no True is a distractor.
    Each query contributes its top_k references as predictions (ISC allows several per query).
    """
    similarity, truth = np.asarray(similarity, dtype=np.float64), np.asarray(truth, dtype=bool)
    if similarity.shape != truth.shape or similarity.ndim != 2:
        raise ValueError(f"similarity {similarity.shape} and truth {truth.shape} must be equal (Q, R) shapes")
    q, r = similarity.shape
    k = min(top_k, r)
    top = np.argsort(-similarity, axis=1, kind="stable")[:, :k]  # (Q, k)
    scores = np.take_along_axis(similarity, top, axis=1).ravel()  # (Q*k,)
    hits = np.take_along_axis(truth, top, axis=1).ravel()  # (Q*k,)
    n_positive = int(truth.sum())
    precision, recall, ordered = _precision_recall(scores, hits, n_positive)
    ok = precision >= 0.9
    r90 = float(recall[ok].max()) if ok.any() else 0.0
    t90 = float(ordered[ok][np.argmax(recall[ok])]) if ok.any() else float("nan")
    positive_queries = truth.any(axis=1)
    r1 = float(truth[np.arange(q), top[:, 0]][positive_queries].mean()) if positive_queries.any() else 0.0
    return CopyDetectionMetrics(
        micro_ap=micro_average_precision(scores, hits, n_positive), recall_at_p90=r90, threshold_at_p90=t90,
        recall_at_1=r1, n_queries=q, n_positive_pairs=n_positive, n_predictions=len(scores),
    )


def retrieval_metrics(similarity: np.ndarray, relevant: np.ndarray) -> RetrievalMetrics:
    """Recall@1 and Precision@5 of ranking candidates by similarity.

    similarity: (Q, C) float; relevant: (Q, C) bool. Queries with no relevant candidate raise ValueError
    (a retrieval family has no distractor queries; put those in copy detection).
    """
    similarity, relevant = np.asarray(similarity, dtype=np.float64), np.asarray(relevant, dtype=bool)
    if similarity.shape != relevant.shape or similarity.ndim != 2:
        raise ValueError(f"similarity {similarity.shape} and relevant {relevant.shape} must be equal (Q, C) shapes")
    if not relevant.any(axis=1).all():
        raise ValueError(f"{int((~relevant.any(axis=1)).sum())} queries have no relevant candidate")
    k = min(5, similarity.shape[1])
    top = np.argsort(-similarity, axis=1, kind="stable")[:, :k]  # (Q, k)
    hits = np.take_along_axis(relevant, top, axis=1)  # (Q, k)
    return RetrievalMetrics(recall_at_1=float(hits[:, 0].mean()), precision_at_5=float(hits.mean()),
                            n_queries=similarity.shape[0])
