"""Geometric verification of the audit's best image candidates (app/geometric_verification.py inside `check`).

After `check` has scored every candidate, the `verify_candidates` matches with the best image evidence
(local_score) are verified: for each, up to `verify_pairs` distinct (query image, matched image) pairs taken
from its image/crop evidence, best first, are matched with SIFT + RANSAC. The pair's inlier score
(n / (n + verify_score_half) for n >= verify_min_inliers inliers, else 0) and the matched region, a box in each image, are written on the pair's best
evidence entry; the match's local_score becomes max(local_score, best inlier score) and its score is
recomputed. Verification only raises scores: a pair that does not verify keeps its cosine evidence.

Calibration (benchmarks/bench_notes.py, the top-5 candidates of 400 queries, 2,000 pairs): unrelated photos
have a median of 8 inliers (score 0 below 15); an edited copy a median of 140-330. But a different shot
of the same scene seconds later (common in the grocery photos) verifies like a copy (up to 420 inliers):
that is why the half-score point is high (75 inliers; a verified pair alone flags a possible infringement
only from ~370 inliers), so that verification re-ranks and strengthens evidence without flagging look-alikes.

Images come from an `ImageSource` (the query note's decoded images; a library note's image files from its
store payload `images`). Untrusted input: an image that cannot be read (missing, corrupt, a decompression
bomb, too large) is skipped with one log line naming it, and the check goes on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from PIL import Image

from app.geometric_verification import LocalFeatures, Verification, local_features, match
from encoder.images import load_image

if TYPE_CHECKING:
    from app.audit import AuditConfig, Evidence, Match

log = logging.getLogger(__name__)

Features = tuple[LocalFeatures, ...]  # (plain,) for a library image; (plain, mirrored left-right) for the query


@dataclass
class ImageSource:
    """Where verification gets pixels. query: the query note's images by index (decoded, or paths);
    candidate_images: a library note's image paths from its payload (default: payload["images"]).
    Features are computed once per image: the query's in this source, library notes' in `memo`, keyed by
    (note id, image index) (share one memo across checks to reuse them)."""

    query: Sequence[Image.Image | Path | str | None] = ()
    candidate_images: Callable[[str, dict[str, Any]], Sequence[Image.Image | Path | str | None]] | None = None
    memo: dict[tuple[str, int], Features | None] = field(default_factory=dict)
    _query_memo: dict[int, Features | None] = field(default_factory=dict, init=False, repr=False)

    def _features(self, key: tuple[str | None, int], source: Image.Image | Path | str | None) -> Features | None:
        """SIFT features of the image (and of its mirror for the query, key[0] None), or None when unreadable."""
        feats = None
        if source is not None:
            try:
                image = source if isinstance(source, Image.Image) else load_image(Path(source))
                feats = (local_features(image),) + ((local_features(image, mirror=True),) if key[0] is None else ())
            except (ValueError, OSError) as e:  # encoder.types.InputError is a ValueError
                where = "query" if key[0] is None else f"note {key[0]!r}"
                log.warning("geometric verification skipped for %s image %d: %s", where, key[1],
                            str(e).splitlines()[0] if str(e) else type(e).__name__)
        return feats

    def query_features(self, index: int) -> Features | None:
        if index not in self._query_memo:
            source = self.query[index] if 0 <= index < len(self.query) else None
            self._query_memo[index] = self._features((None, index), source)
        return self._query_memo[index]

    def candidate_features(self, note_id: str, payload: dict[str, Any], index: int) -> Features | None:
        key = (note_id, index)
        if key in self.memo:
            return self.memo[key]
        paths = self.candidate_images(note_id, payload) if self.candidate_images else payload.get("images") or []
        self.memo[key] = self._features(key, paths[index] if 0 <= index < len(paths) else None)
        return self.memo[key]


def verify_pair(q: Features, c: Features, config: "AuditConfig") -> Verification:
    """The better of the plain and the mirrored query against the candidate."""
    kw = {"min_inliers": config.verify_min_inliers, "score_half": config.verify_score_half}
    plain = match(q[0], c[0], **kw)
    flipped = match(q[1], c[0], mirrored=True, **kw)
    return flipped if flipped.inliers > plain.inliers else plain


def combined_score(note_score: float, local_score: float, text_score: float, config: "AuditConfig") -> float:
    """The noisy-or of app/audit.py step 3."""
    image_part = config.local_weight * min(max(local_score, 0.0), 1.0)
    return max(note_score, 1.0 - (1.0 - image_part) * (1.0 - config.text_weight * text_score))


def _pairs(evidence: Sequence["Evidence"], limit: int) -> list[tuple[tuple[int, int], "Evidence"]]:
    """Distinct (query image, matched image) pairs of the image evidence, best evidence first, at most limit."""
    seen: dict[tuple[int, int], Evidence] = {}
    for e in sorted(evidence, key=lambda ev: -ev.effective_score):
        if e.query_kind in ("image", "crop") and e.query_image_index is not None and e.matched_image_index is not None:
            seen.setdefault((e.query_image_index, e.matched_image_index), e)
            if len(seen) == limit:
                break
    return list(seen.items())


def verify_matches(matches: list["Match"], payloads: dict[str, dict[str, Any]], images: ImageSource,
                   config: "AuditConfig") -> int:
    """Verify the best image candidates in place (module docstring); returns the number of pairs verified.
    matches keep their order (the caller re-sorts); nothing happens when config.verify_candidates is 0."""
    if config.verify_candidates <= 0 or config.verify_pairs <= 0:
        return 0
    chosen = sorted((m for m in matches if m.local_score > 0.0), key=lambda m: -m.local_score)
    n_pairs = 0
    for m in chosen[:config.verify_candidates]:
        best = 0.0
        for (qi, mi), ev in _pairs(m.evidence, config.verify_pairs):
            q = images.query_features(qi)
            c = images.candidate_features(m.note_id, payloads.get(m.note_id, {}), mi)
            if q is None or c is None:
                continue
            v = verify_pair(q, c, config)
            n_pairs += 1
            ev.inliers, ev.verified_score = v.inliers, v.score
            ev.verified_query_box, ev.verified_matched_box, ev.verified_mirrored = v.query_box, v.cand_box, v.mirrored
            best = max(best, v.score)
        if m.raw_score is not None:
            m.raw_score = max(m.raw_score, combined_score(m.note_score, best, m.text_score, config))
        if best > m.local_score:
            m.local_score = best
            m.score = combined_score(m.note_score, m.local_score, m.text_score, config)
            m.verdict = config.verdict(m.score)
    return n_pairs
