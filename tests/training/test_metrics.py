"""training/metrics.py: µAP against a hand computation and scikit-learn, recall@P90, Recall@1, Precision@5."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from training.metrics import copy_detection_metrics, micro_average_precision, retrieval_metrics


def test_micro_ap_by_hand():
    # ranked: T F T F, 3 ground-truth pairs (one never retrieved): (1/1 + 2/3) / 3
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    hits = np.array([True, False, True, False])
    assert micro_average_precision(scores, hits, n_positive=3) == pytest.approx((1 + 2 / 3) / 3)


def test_micro_ap_equals_sklearn_when_every_pair_is_predicted():
    rng = np.random.default_rng(0)
    scores, hits = rng.normal(size=200), rng.random(200) < 0.3
    assert micro_average_precision(scores, hits, int(hits.sum())) == pytest.approx(
        average_precision_score(hits, scores))


def test_micro_ap_rejects_bad_input():
    with pytest.raises(ValueError, match="n_positive"):
        micro_average_precision(np.ones(3), np.ones(3, dtype=bool), 2)
    with pytest.raises(ValueError, match="shapes"):
        micro_average_precision(np.ones(3), np.ones(2, dtype=bool), 2)


def test_copy_detection_perfect_and_distractors():
    truth = np.eye(4, dtype=bool)
    perfect = copy_detection_metrics(np.eye(4) + 0.01, truth)
    assert perfect.micro_ap == pytest.approx(1.0) and perfect.recall_at_p90 == 1.0 and perfect.recall_at_1 == 1.0
    # a distractor query (no true reference) scoring above every true pair costs precision: one curve for all
    sim = np.vstack([np.eye(4) * 0.5, [[0.9, 0, 0, 0]]])
    truth5 = np.vstack([truth, np.zeros((1, 4), dtype=bool)])
    m = copy_detection_metrics(sim, truth5, top_k=1)
    assert m.micro_ap == pytest.approx((1 / 2 + 2 / 3 + 3 / 4 + 4 / 5) / 4)
    assert m.n_queries == 5 and m.n_positive_pairs == 4
    assert m.recall_at_p90 == 0.0  # precision never reaches 0.9 once the distractor leads


def test_recall_at_p90_threshold():
    sim = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.35]])
    truth = np.array([[1, 0], [0, 1], [1, 0]], dtype=bool)
    m = copy_detection_metrics(sim, truth, top_k=1)
    assert m.recall_at_p90 == pytest.approx(2 / 3) and m.threshold_at_p90 == pytest.approx(0.8)


def test_retrieval_metrics():
    sim = np.array([[0.9, 0.8, 0.1, 0.0, 0.0, 0.0], [0.1, 0.9, 0.8, 0.0, 0.0, 0.0]])
    rel = np.array([[1, 1, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0]], dtype=bool)
    m = retrieval_metrics(sim, rel)
    assert m.recall_at_1 == 0.5 and m.precision_at_5 == pytest.approx((2 / 5 + 1 / 5) / 2)
    with pytest.raises(ValueError, match="no relevant"):
        retrieval_metrics(sim, np.zeros_like(rel))
