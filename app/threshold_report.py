"""What each threshold would have given on the decisions moderators recorded so far: precision and recall.

A decided match is a labelled example: its score (cosine scale, as reported by the check) and the
moderator's latest decision. For a candidate threshold t a match is *flagged* when score >= t.
- infringement threshold ("flag"): positive = decided duplicate or infringing;
- duplicate threshold: positive = decided duplicate.
precision = TP / (TP + FP) (1.0 when nothing is flagged), recall = TP / (TP + FN) (None without positives).
Recall counts only matches that reached a report (the check's candidate stages found them): it is the
recall of the threshold, not of the search. The usual detection precision/recall at a threshold (as in
the HMA matcher's threshold tuning and SSCD's recall@precision).

Score normalisation (SSCD, Pizzi et al. 2022; app/audit.py step 3): a match's image evidence is shifted by
its query's background (its k-th nearest library note), so that one threshold means one precision across
queries. Reports carry each match's raw (un-normalised) score too; `NormalisationReport` puts the two side
by side on the decided matches that have both: precision/recall at each threshold and the score
distributions of decided copies and non-copies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from app.records import reports
from app.records.types import Decision, DecisionRecord

COPY_DECISIONS = (Decision.DUPLICATE, Decision.INFRINGING)
DEFAULT_GRID = tuple(round(x, 2) for x in np.arange(0.50, 1.0001, 0.05))


@dataclass(frozen=True)
class ThresholdRow:
    """Counts and rates of one threshold on the decided matches."""

    threshold: float
    flagged: int  # decided matches with score >= threshold
    true_positives: int
    false_positives: int
    false_negatives: int
    precision: float  # 1.0 when nothing is flagged
    recall: float | None  # None when no decided match is positive


@dataclass(frozen=True)
class ThresholdReport:
    """Precision/recall tables of both thresholds on `n_decisions` decided matches."""

    n_decisions: int
    n_copies: int  # decided duplicate or infringing
    n_duplicates: int  # decided duplicate
    infringement: list[ThresholdRow]  # flag = duplicate or infringing
    duplicate: list[ThresholdRow]  # flag = duplicate
    normalisation: "NormalisationReport | None" = None  # None when no decided match carries a raw score


@dataclass(frozen=True)
class ScoreBin:
    """Decided matches with a score in [low, high) (the last bin includes high), raw and normalised."""

    low: float
    high: float
    copies_raw: int
    copies_normalised: int
    others_raw: int
    others_normalised: int


@dataclass(frozen=True)
class NormalisationReport:
    """Raw vs normalised scores on the n_matches decided matches whose report carries both
    (flag = duplicate or infringing, as the infringement table)."""

    n_matches: int
    raw: list[ThresholdRow]
    normalised: list[ThresholdRow]
    bins: list[ScoreBin]


def threshold_rows(scores: Sequence[float], positive: Sequence[bool],
                   thresholds: Sequence[float]) -> list[ThresholdRow]:
    """One ThresholdRow per threshold. scores: (N,) cosine scores; positive: (N,) labels.
    Raises ValueError when the two lengths differ or a score is not finite."""
    s = np.asarray(scores, dtype=np.float64)  # (N,)
    y = np.asarray(positive, dtype=bool)  # (N,)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError(f"scores {s.shape} and labels {y.shape} must be two 1-d arrays of one length")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    rows = []
    n_pos = int(y.sum())
    for t in thresholds:
        flagged = s >= t  # (N,)
        tp = int((flagged & y).sum())
        fp = int((flagged & ~y).sum())
        fn = n_pos - tp
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / n_pos if n_pos else None
        rows.append(ThresholdRow(float(t), tp + fp, tp, fp, fn, precision, recall))
    return rows


def score_bins(raw: Sequence[float], normalised: Sequence[float], positive: Sequence[bool],
               edges: Sequence[float] = tuple(round(x, 2) for x in np.arange(0.0, 1.0001, 0.1))) -> list[ScoreBin]:
    """Histogram of raw and normalised scores (each (N,)) of copies (positive) and others over `edges` (B + 1,);
    scores outside the edges are counted in the first / last bin."""
    e = np.asarray(edges, dtype=np.float64)  # (B + 1,)
    y = np.asarray(positive, dtype=bool)  # (N,)

    def counts(s: np.ndarray) -> np.ndarray:  # (B,)
        idx = np.clip(np.searchsorted(e, s, side="right") - 1, 0, len(e) - 2)  # (N,)
        return np.bincount(idx, minlength=len(e) - 1)

    r, n = np.asarray(raw, dtype=np.float64), np.asarray(normalised, dtype=np.float64)  # (N,), (N,)
    cr, cn, orr, on = counts(r[y]), counts(n[y]), counts(r[~y]), counts(n[~y])
    return [ScoreBin(float(e[i]), float(e[i + 1]), int(cr[i]), int(cn[i]), int(orr[i]), int(on[i]))
            for i in range(len(e) - 1)]


def normalisation_report(decided: Sequence[DecisionRecord],
                         thresholds: Sequence[float] = DEFAULT_GRID) -> NormalisationReport | None:
    """Raw vs normalised on the decisions whose match carries a raw score; None when none does."""
    both = [d for d in decided if d.raw_score is not None]
    if not both:
        return None
    raw, norm = [float(d.raw_score) for d in both], [d.score for d in both]  # type: ignore[arg-type]
    copies = [d.decision in COPY_DECISIONS for d in both]
    return NormalisationReport(len(both), threshold_rows(raw, copies, thresholds),
                               threshold_rows(norm, copies, thresholds), score_bins(raw, norm, copies))


def build_threshold_report(decided: Sequence[DecisionRecord],
                           thresholds: Sequence[float] = DEFAULT_GRID) -> ThresholdReport:
    """The report of `thresholds` on decisions (one per match: reports.decisions(latest_only=True))."""
    scores = [d.score for d in decided]
    copies = [d.decision in COPY_DECISIONS for d in decided]
    duplicates = [d.decision == Decision.DUPLICATE for d in decided]
    return ThresholdReport(
        n_decisions=len(decided), n_copies=sum(copies), n_duplicates=sum(duplicates),
        infringement=threshold_rows(scores, copies, thresholds),
        duplicate=threshold_rows(scores, duplicates, thresholds),
        normalisation=normalisation_report(decided, thresholds),
    )


def threshold_report(sessions: sessionmaker[Session], thresholds: Sequence[float] = DEFAULT_GRID) -> ThresholdReport:
    """The report on every match's latest decision in the records database.
    Reads the decisions once (one row per decided match; they grow with moderators' work, not with the
    library)."""
    session: Session
    with sessions() as session:
        decided = reports.decisions(session, latest_only=True)
    return build_threshold_report(decided, thresholds)
