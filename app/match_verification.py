"""Geometric verification of the audit's best image candidates (app/geometric_verification.py inside `check`).

After `check` has scored every candidate, the `verify_candidates` matches with the best image evidence
(local_score) are verified: for each, up to `verify_pairs` distinct (query image, matched image) pairs taken
from its image/crop evidence, best first, are matched with SIFT + RANSAC. The pair's inlier score
(n / (n + verify_score_half) for n >= verify_min_inliers inliers, else 0) and the matched region, a box in each image, are written on the pair's best
evidence entry; the match's local_score becomes max(local_score, best inlier score) and its score is
recomputed. Verification only raises scores: a pair that does not verify keeps its cosine evidence.
When the best match is already a duplicate, only it (for its boxes) and the candidates that a perfect
inlier score could lift above it are verified; the mirrored query is matched only for a pair whose plain query
does not verify (a check costs ~50 ms of CPU per SIFT image and ~12 ms per pair matched).

Where the wall time goes (docs/verification.md): the query's SIFT runs in worker threads (`worker_pool`,
ENCODER_THREADS of them) from the moment its images are decoded, beside OCR and the encoder
(`ImageSource.prefetch`, called by Library.check); the mirrored query's features are derived from the plain
ones (app.geometric_verification.mirrored, no second SIFT pass); the candidates' images are decoded and
SIFTed side by side, then every pair is matched side by side (OpenCV releases the GIL). Results are applied in
the sequential order, so they do not depend on the thread count.

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
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from PIL import Image

from app.geometric_verification import LocalFeatures, Verification, local_features, match
from app.geometric_verification import mirrored as mirror_features
from encoder.images import load_image
from encoder.threads import current_threads

if TYPE_CHECKING:
    from app.audit import AuditConfig, Evidence, Match

log = logging.getLogger(__name__)

_POOL: ThreadPoolExecutor | None = None
_POOL_SIZE = 0
_POOL_LOCK = threading.Lock()


def worker_pool() -> ThreadPoolExecutor:
    """The verification threads: ENCODER_THREADS workers (encoder.threads.current_threads()), made on first use
    and again when that count changes. OpenCV's SIFT, matcher and RANSAC release the GIL, so the workers run
    side by side. OpenCV keeps its own thread count: cv2.setNumThreads is process-wide and, where OpenCV and
    torch share an OpenMP runtime, it changes torch's thread count too (and so the last float bits of the
    encoder's vectors, which must not depend on whether a check ran before)."""
    global _POOL, _POOL_SIZE
    n = current_threads()
    with _POOL_LOCK:
        if _POOL is None or _POOL_SIZE != n:
            old, _POOL, _POOL_SIZE = _POOL, ThreadPoolExecutor(max_workers=n, thread_name_prefix="verify"), n
            if old is not None:
                old.shutdown(wait=False)
        return _POOL


@dataclass
class ImageSource:
    """Where verification gets pixels. query: the query note's images by index (decoded, or paths);
    candidate_images: a library note's image paths from its payload (default: payload["images"]).
    Features are computed once per image: the query's in this source (the mirrored ones derived from the plain,
    app.geometric_verification.mirrored), library notes' in `memo`, keyed by (note id, image index) (share one
    memo across checks to reuse them). `prefetch` starts the query's in the background (worker_pool())."""

    query: Sequence[Image.Image | Path | str | None] = ()
    candidate_images: Callable[[str, dict[str, Any]], Sequence[Image.Image | Path | str | None]] | None = None
    memo: dict[tuple[str, int], LocalFeatures | None] = field(default_factory=dict)
    _query_memo: dict[tuple[int, bool], LocalFeatures | None] = field(default_factory=dict, init=False, repr=False)
    _pending: dict[int, Future] = field(default_factory=dict, init=False, repr=False)

    @staticmethod
    def _features(where: str, index: int, source: Image.Image | Path | str | None) -> LocalFeatures | None:
        """SIFT features of the image, or None when unreadable (logged)."""
        if source is None:
            return None
        try:
            image = source if isinstance(source, Image.Image) else load_image(Path(source))
            return local_features(image)
        except (ValueError, OSError) as e:  # encoder.types.InputError is a ValueError
            log.warning("geometric verification skipped for %s image %d: %s", where, index,
                        str(e).splitlines()[0] if str(e) else type(e).__name__)
            return None

    def _query_source(self, index: int) -> Image.Image | Path | str | None:
        return self.query[index] if 0 <= index < len(self.query) else None

    def prefetch(self, indices: Sequence[int] | None = None) -> None:
        """Start computing the plain features of these query images (default: all) in worker_pool(), e.g. while
        the note is encoded; query_features then waits for them. Images already computed or started are skipped."""
        pool = worker_pool()
        for i in range(len(self.query)) if indices is None else indices:
            if (i, False) not in self._query_memo and i not in self._pending:
                self._pending[i] = pool.submit(self._features, "query", i, self._query_source(i))

    def query_features(self, index: int, mirrored: bool = False) -> LocalFeatures | None:
        key = (index, mirrored)
        if key not in self._query_memo:
            if mirrored:
                plain = self.query_features(index)
                self._query_memo[key] = None if plain is None else mirror_features(plain)
            elif index in self._pending:
                self._query_memo[key] = self._pending.pop(index).result()
            else:
                self._query_memo[key] = self._features("query", index, self._query_source(index))
        return self._query_memo[key]

    def _candidate_source(self, note_id: str, payload: dict[str, Any], index: int) -> Image.Image | Path | str | None:
        paths = self.candidate_images(note_id, payload) if self.candidate_images else payload.get("images") or []
        return paths[index] if 0 <= index < len(paths) else None

    def candidate_features(self, note_id: str, payload: dict[str, Any], index: int) -> LocalFeatures | None:
        key = (note_id, index)
        if key not in self.memo:
            self.memo[key] = self._features(f"note {note_id!r}", index, self._candidate_source(note_id, payload, index))
        return self.memo[key]

    def load(self, query: Sequence[int], candidates: Sequence[tuple[str, dict[str, Any], int]]) -> None:
        """Compute the features of these query images and (note id, payload, image index) candidate images
        side by side in worker_pool() (what is memoised already is skipped); afterwards query_features and
        candidate_features answer from the memos."""
        self.prefetch(query)
        pool = worker_pool()
        todo: dict[tuple[str, int], Future] = {}
        for note_id, payload, index in candidates:
            if (note_id, index) not in self.memo and (note_id, index) not in todo:
                todo[(note_id, index)] = pool.submit(self._features, f"note {note_id!r}", index,
                                                     self._candidate_source(note_id, payload, index))
        for key, future in todo.items():
            self.memo[key] = future.result()
        for i in query:
            self.query_features(i)


def verify_pair(images: ImageSource, qi: int, c: LocalFeatures, config: "AuditConfig") -> Verification | None:
    """Query image qi against the candidate's features: the plain query first, the mirrored one (computed
    only then) when the plain one does not verify. None when the query image cannot be read."""
    kw = {"min_inliers": config.verify_min_inliers, "score_half": config.verify_score_half}
    q = images.query_features(qi)
    if q is None:
        return None
    plain = match(q, c, **kw)
    if plain.score > 0.0:
        return plain
    flipped = match(images.query_features(qi, mirrored=True), c, mirrored=True, **kw)
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
    chosen = chosen[:config.verify_candidates]
    top = max(matches, key=lambda m: m.score, default=None)
    if top is not None and top.score >= config.duplicate_threshold:  # the verdict is decided: verify the top
        # match (its boxes) and only candidates that an inlier score of 1 could lift above it
        chosen = [m for m in chosen if m is top or combined_score(m.note_score, 1.0, m.text_score, config) > top.score]
    plan = [(m, payloads.get(m.note_id, {}), _pairs(m.evidence, config.verify_pairs)) for m in chosen]
    query = sorted({qi for _, _, pairs in plan for (qi, _), _ in pairs})
    images.load(query, [(m.note_id, payload, mi) for m, payload, pairs in plan for (_, mi), _ in pairs])
    for qi in query:
        images.query_features(qi, mirrored=True)  # derived here, so the workers only read the memos
    jobs = [(qi, images.candidate_features(m.note_id, payload, mi)) for m, payload, pairs in plan for (qi, mi), _ in pairs]
    results = iter(list(worker_pool().map(  # the pairs side by side; applied below in the sequential order
        lambda job: verify_pair(images, job[0], job[1], config) if job[1] is not None else None, jobs)))
    n_pairs = 0
    for m, _, pairs in plan:
        best = 0.0
        for _, ev in pairs:
            v = next(results)
            if v is None:
                continue
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
