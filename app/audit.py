"""Auditing a note against the library: candidates, evidence, scores and a verdict.

check() (paper §3, "local" and "global" elements; the HMA matcher's "signal + evidence" report):
1. candidates = union of
   - global search, coarse-to-fine (`prefetch global_<prefix> -> global_<D>`, app/store.py),
   - element search: every query element (image, crop, title, body piece, OCR) against stored elements
     (text copies are found here: the global vector misses them); a text element's k-th nearest stored
     text element is its semantic background (app/text_evidence.py),
   - PDQ search: every query image hash of good quality against stored image hashes (Meta's rule);
2. each candidate is re-scored exactly from its stored full-dim vectors: global cosine g, and for each
   query element its best-matching element of the candidate (the evidence, with the PDQ Hamming distance
   for image pairs);
3. score = max(note_score, 1 - (1 - local_weight * local_score) * (1 - text_weight * text_score)) (a
   noisy-or: either kind of evidence alone counts as before, both together add up) where
   note_score  = global_weight * g + (1 - global_weight) * image_coverage when both notes have images
                 (image_coverage = mean over the query's whole images of their best image/crop score),
                 else g;
   local_score = best image/crop evidence, normalised against the library as background (SSCD, Pizzi et
                 al. 2022, "score normalization"): each query image/crop's cosine minus (its similarity
                 to its background_k-th nearest library note - background_reference), so a photo whose
                 neighbourhood is crowded (the same product shot by many people) needs more to match and
                 one threshold means one precision across queries; unknown when the library holds fewer
                 than background_k other notes with images (then not normalised). An image pair matched
                 by PDQ (distance <= pdq_max_distance, both qualities >= pdq_min_quality) counts at least
                 1 - pdq_penalty * distance / max_distance.
   text_score  = max(verbatim, semantic_weight * semantic) (app/text_evidence.py: character n-gram overlap
                 and text-vector cosine, each calibrated so unrelated texts score 0; short texts and
                 hashtags never count), entered as text_weight * text_score.
   With local_weight, text_weight < duplicate_threshold, one reused image or a copied text flags a
   "possible_infringement" even when the rest of the note differs, while a "duplicate" needs the note as
   a whole (global vector and its images) to match;
4. geometric verification (app/match_verification.py, when `images` is given and verify_candidates > 0):
   the verify_candidates matches with the best image evidence have up to verify_pairs image pairs matched
   with SIFT + RANSAC; a pair's inlier score (0 for unrelated photos) and its matched region (a box in each
   image) are written on its evidence, and local_score = max(local_score, best inlier score);
5. verdict per match by thresholds; the report's verdict is the worst one.
check() only reads the store; the query note is excluded from its own results.

Where the time went (AuditReport.timings_ms, milliseconds of wall time): check() fills `search` (the
global, element and PDQ searches), `rescore` (fetching the candidates' stored vectors and scoring
them) and `verify` (geometric verification, when on); app.library.Library.check adds `prepare` (image decoding and PDQ hashing), `ocr`, `encode` and
`total` (from the note to the finished report, before it is saved).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import numpy as np

from app.image_hashes import PdqHash, hamming
from app.match_verification import ImageSource, combined_score, verify_matches
from app.settings import Settings
from app.store import VectorStore
from app.text_evidence import TEXT_KINDS, TextEvidenceConfig, TextPiece, joined_text, shingles, text_scores
from encoder.types import Box, ElementKind, EncodedNote, LocalVector

DUPLICATE = "duplicate"
POSSIBLE_INFRINGEMENT = "possible_infringement"
CLEAR = "clear"
VERDICT_ORDER = {CLEAR: 0, POSSIBLE_INFRINGEMENT: 1, DUPLICATE: 2}
IMAGE_KINDS = (ElementKind.IMAGE, ElementKind.CROP)
ELEMENT_STAGE = "element"
PDQ_STAGE = "pdq"
TIMING_KEYS = ("prepare", "ocr", "encode", "search", "rescore", "verify", "total")  # AuditReport.timings_ms
BOX_KEYS = ("query_box", "matched_box", "verified_query_box", "verified_matched_box")  # Evidence boxes


class ModelVersionMismatchError(ValueError):
    """The query was encoded by other weights than the library's active vectors."""


@dataclass(frozen=True)
class AuditConfig:
    """Thresholds and weights of `check` (cosine-scale scores in [-1, 1])."""

    duplicate_threshold: float = 0.90  # score at/above which a match is a duplicate
    infringement_threshold: float = 0.65  # score at/above which a match is a possible infringement
    pdq_max_distance: int = 31  # Hamming distance counted as a near-exact image copy (Meta)
    pdq_min_quality: int = 50  # PDQ quality below which a hash is not trusted (Meta)
    global_weight: float = 0.5  # weight of the global cosine in note_score (the rest: image coverage)
    local_weight: float = 0.82  # multiplier of the best image evidence; < duplicate_threshold by design
    pdq_penalty: float = 0.05  # a PDQ match at distance d counts 1 - pdq_penalty * d / pdq_max_distance
    global_candidates: int = 20  # notes taken from the global search
    element_candidates: int = 10  # stored elements taken per query element
    pdq_candidates: int = 10  # stored images taken per query image hash
    text_weight: float = 0.82  # multiplier of the text score; < duplicate_threshold by design
    semantic_weight: float = 0.8  # the semantic text score counts this much against the verbatim one
    text: TextEvidenceConfig = field(default_factory=TextEvidenceConfig)
    background_k: int = 5  # an image's k-th nearest other library note is its background (SSCD)
    background_reference: float = 0.30  # the usual k-th neighbour cosine (median on bench_notes); 0 shift
    background_hits: int = 64  # stored elements read per query element to find the backgrounds
    verify_candidates: int = 3  # matches (best image evidence first) geometrically verified; 0 = off
    verify_pairs: int = 2  # (query image, matched image) pairs verified per match
    verify_min_inliers: int = 15  # RANSAC inliers below which a pair's inlier score is 0 (unrelated photos)
    verify_score_half: float = 75.0  # inliers at which the inlier score is 0.5 (n / (n + half)); bench_notes

    def __post_init__(self) -> None:
        if not self.infringement_threshold <= self.duplicate_threshold:
            raise ValueError("infringement_threshold must not exceed duplicate_threshold")
        if not 0.0 <= self.global_weight <= 1.0:
            raise ValueError(f"global_weight must be in [0, 1], got {self.global_weight}")
        for name in ("local_weight", "text_weight", "semantic_weight"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0 <= self.pdq_max_distance <= 256:
            raise ValueError(f"pdq_max_distance must be in [0, 256], got {self.pdq_max_distance}")
        for name in ("global_candidates", "element_candidates", "pdq_candidates", "background_k", "background_hits"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        for name in ("verify_candidates", "verify_pairs", "verify_min_inliers"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.verify_score_half <= 0:
            raise ValueError(f"verify_score_half must be > 0, got {self.verify_score_half}")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> "AuditConfig":
        return cls(
            duplicate_threshold=settings.duplicate_threshold,
            infringement_threshold=settings.infringement_threshold,
            pdq_max_distance=settings.pdq_max_distance,
            pdq_min_quality=settings.pdq_min_quality,
            verify_candidates=settings.verify_candidates,
            verify_pairs=settings.verify_pairs,
            **overrides,
        )

    def verdict(self, score: float) -> str:
        if score >= self.duplicate_threshold:
            return DUPLICATE
        if score >= self.infringement_threshold:
            return POSSIBLE_INFRINGEMENT
        return CLEAR


@dataclass
class Evidence:
    """One query element and its best-matching element of the candidate note.

    score: cosine of the two full-dim local vectors; effective_score: the score used for ranking (raised by
    a PDQ match for image pairs); pdq_distance: Hamming distance when both are hashed images, else None.
    inliers / verified_score / verified_*_box: geometric verification of this image pair (None when it was not
    verified): RANSAC inliers, the inlier score in [0, 1) and the matched region in each image, (x0, y0, x1, y1)
    fractions (None when the pair did not verify); verified_mirrored: found with the query mirrored.
    """

    query_kind: str
    query_index: int
    matched_kind: str
    matched_index: int
    score: float
    effective_score: float
    query_image_index: int | None = None
    query_box: Box | None = None
    query_text: str | None = None
    matched_image_index: int | None = None
    matched_box: Box | None = None
    matched_text: str | None = None
    pdq_distance: int | None = None
    pdq_match: bool = False
    background: float | None = None  # image/crop query: cosine to its background_k-th nearest library note
    shift: float = 0.0  # background - background_reference (0 when the background is unknown)
    inliers: int | None = None
    verified_score: float | None = None
    verified_query_box: Box | None = None
    verified_matched_box: Box | None = None
    verified_mirrored: bool = False

    @property
    def normalised_score(self) -> float:
        """effective_score - shift (SSCD normalisation); a PDQ match never drops below its effective score."""
        value = self.effective_score - self.shift
        return max(value, self.effective_score) if self.pdq_match else value

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Evidence":
        d = dict(d)
        for key in BOX_KEYS:
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        return cls(**d)


@dataclass
class Match:
    """A library note that resembles the query. stages: which searches found it
    (e.g. "prefetch global_64 -> global_512", "element", "pdq")."""

    note_id: str
    title: str
    score: float
    verdict: str
    global_score: float
    note_score: float
    local_score: float
    stages: list[str]
    evidence: list[Evidence]  # best first
    text_score: float = 0.0  # max(verbatim, semantic_weight * semantic), in [0, 1]
    verbatim_score: float = 0.0  # calibrated character n-gram overlap of the two notes' texts
    semantic_score: float = 0.0  # calibrated text-vector cosine
    raw_score: float | None = None  # the score without the background normalisation (thresholds page)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Match":
        d = dict(d)
        d["evidence"] = [Evidence.from_dict(e) for e in d["evidence"]]
        return cls(**d)


@dataclass
class AuditReport:
    """The result of `check`: matches best first, the worst verdict, the thresholds used."""

    query_note_id: str
    model_version: str
    verdict: str
    matches: list[Match]
    config: dict[str, Any]
    n_candidates: int
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    report_id: int | str | None = None  # set when the report is saved in the records
    timings_ms: dict[str, float] = field(default_factory=dict)  # TIMING_KEYS -> wall ms (module docstring)

    def timings_line(self) -> str:
        """One line for people: `encode 41 ms · ocr 0 ms · search 6 ms · rescore 2 ms · total 55 ms` (keys
        of TIMING_KEYS present in timings_ms, in that order); empty when nothing was timed."""
        return " · ".join(f"{k} {self.timings_ms[k]:.0f} ms" for k in TIMING_KEYS if k in self.timings_ms)

    @property
    def top_score(self) -> float | None:
        """The best match's score, or None when nothing matched."""
        return self.matches[0].score if self.matches else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (boxes become lists; top_score added for the records)."""
        d = asdict(self) | {"top_score": self.top_score}
        for m in d["matches"]:
            for e in m["evidence"]:
                for key in BOX_KEYS:
                    if e[key] is not None:
                        e[key] = list(e[key])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AuditReport":
        d = dict(d)
        d.pop("top_score", None)  # derived
        d["matches"] = [Match.from_dict(m) for m in d["matches"]]
        return cls(**d)


def _query_hash(element: LocalVector, pdq: list[PdqHash | None]) -> PdqHash | None:
    if element.kind == ElementKind.IMAGE and element.index < len(pdq):
        return pdq[element.index]
    return None


def _note_background(hits, k: int) -> float | None:
    """The best image/crop score of the k-th distinct note among element hits (best first), or None."""
    seen: set[str] = set()
    for h in hits:
        if h.kind in IMAGE_KINDS and h.note_id not in seen:
            seen.add(h.note_id)
            if len(seen) == k:
                return float(h.score)
    return None


def _pdq_score(distance: int, config: AuditConfig) -> float:
    if config.pdq_max_distance == 0:
        return 1.0
    return 1.0 - config.pdq_penalty * distance / config.pdq_max_distance


def _evidence(encoded: EncodedNote, pdq: list[PdqHash | None], vectors, config: AuditConfig) -> list[Evidence]:
    """For each query element its best element of the same modality (image/crop vs title/body/OCR) in the
    candidate (vectors: store.NoteVectors); query elements without such an element get none."""
    if not encoded.locals or not vectors.elements:
        return []
    queries = np.stack([e.vector for e in encoded.locals]).astype(np.float32)  # (Q, D)
    stored = vectors.element_matrix()  # (E, D)
    cos = np.clip(queries @ stored.T, -1.0, 1.0)  # (Q, E)
    q_image = np.array([q.kind in IMAGE_KINDS for q in encoded.locals])  # (Q,)
    e_image = np.array([e.kind in IMAGE_KINDS for e in vectors.elements])  # (E,)
    same_modality = q_image[:, None] == e_image[None, :]  # (Q, E): image<->image, text<->text
    effective = np.where(same_modality, cos, -np.inf)  # (Q, E)
    distances: dict[tuple[int, int], int] = {}
    for qi, q in enumerate(encoded.locals):
        qhash = _query_hash(q, pdq)
        if qhash is None:
            continue
        for ei, e in enumerate(vectors.elements):
            if e.kind == ElementKind.IMAGE and e.pdq is not None:
                d = hamming(qhash, e.pdq)
                distances[(qi, ei)] = d
                good = qhash.quality >= config.pdq_min_quality and e.pdq.quality >= config.pdq_min_quality
                if good and d <= config.pdq_max_distance:
                    effective[qi, ei] = max(effective[qi, ei], _pdq_score(d, config))
    out = []
    for qi, q in enumerate(encoded.locals):
        if not same_modality[qi].any():
            continue  # e.g. a query image against a text-only note
        ei = int(np.argmax(effective[qi]))
        e = vectors.elements[ei]
        d = distances.get((qi, ei))
        qhash = _query_hash(q, pdq)
        is_match = (d is not None and qhash is not None and e.pdq is not None and d <= config.pdq_max_distance
                    and min(qhash.quality, e.pdq.quality) >= config.pdq_min_quality)
        out.append(Evidence(
            query_kind=ElementKind(q.kind).value, query_index=q.index, matched_kind=e.kind.value,
            matched_index=e.index, score=float(cos[qi, ei]), effective_score=float(effective[qi, ei]),
            query_image_index=q.image_index, query_box=q.box, query_text=q.text,
            matched_image_index=e.image_index, matched_box=e.box, matched_text=e.text,
            pdq_distance=d, pdq_match=is_match,
        ))
    out.sort(key=lambda ev: ev.effective_score, reverse=True)
    return out


def check(encoded: EncodedNote, pdq: list[PdqHash | None], store: VectorStore, config: AuditConfig,
          limit: int = 10, visible: Callable[[list[str]], set[str]] | None = None,
          images: ImageSource | None = None) -> AuditReport:
    """Audit one encoded note against the library (read-only); see the module docstring.

    pdq: the query's PDQ hashes by image index (None = not hashed), or empty. limit: matches reported.
    visible: given the candidate note ids the searches found, the ones that may be reported (Library: those
    with an `indexed` registry row, so that vectors of an interrupted write are never shown); None = all.
    images: the pixels of the query and of library notes for geometric verification (step 4); None = none.
    Raises ModelVersionMismatchError when the library's active vectors come from other weights, and
    ValueError for limit < 1.
    """
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    active = store.active_version()
    if active is not None and active != encoded.model_version:
        raise ModelVersionMismatchError(
            f"the library is indexed with model version {active!r} but the query was encoded with "
            f"{encoded.model_version!r}: re-index the library with this encoder (then switch_alias) or audit "
            f"with the encoder of {active!r}"
        )
    report_config = asdict(config)
    if active is None:
        return AuditReport(encoded.note_id, encoded.model_version, CLEAR, [], report_config, 0,
                           timings_ms={"search": 0.0, "rescore": 0.0})
    t_search = time.perf_counter()

    exclude = encoded.note_id
    global_vector = np.asarray(encoded.global_vector, dtype=np.float32)  # (D,)
    dim = global_vector.shape[0]
    stages: dict[str, list[str]] = {}

    def found(note_id: str, stage: str) -> None:
        if stage not in stages.setdefault(note_id, []):
            stages[note_id].append(stage)

    for hit in store.search_global(global_vector, limit=config.global_candidates, exclude_note_id=exclude):
        found(hit.note_id, hit.stage)
    query_text = [TextPiece(e.kind, e.index, e.text or "", e.vector) for e in encoded.locals if e.kind in TEXT_KINDS]
    backgrounds: list[float] = []  # per query text element: its k-th nearest stored text element's cosine
    image_backgrounds: dict[tuple[str, int], float | None] = {}  # (kind, index) -> k-th nearest note's cosine
    if encoded.locals:
        queries = np.stack([e.vector for e in encoded.locals]).astype(np.float32)  # (Q, D)
        k = config.text.semantic_background_k
        limit = max(config.element_candidates, k, config.background_hits)
        rows = store.search_elements(queries, limit, exclude_note_id=exclude, details=False)  # note, kind, score
        for q, hits in zip(encoded.locals, rows):
            for hit in hits[:config.element_candidates]:
                found(hit.note_id, ELEMENT_STAGE)
            if q.kind in TEXT_KINDS:
                text_hits = [h.score for h in hits if h.kind in TEXT_KINDS]
                backgrounds.append(text_hits[k - 1] if len(text_hits) >= k else float("nan"))
            else:
                image_backgrounds[(q.kind, q.index)] = _note_background(hits, config.background_k)
    good_hashes = [h for h in pdq if h is not None and h.quality >= config.pdq_min_quality]
    if good_hashes:  # one batch query for all of them
        for hits in store.search_pdq_batch(good_hashes, config.pdq_max_distance, config.pdq_candidates,
                                           exclude_note_id=exclude):
            for hit in hits:
                if hit.quality >= config.pdq_min_quality:
                    found(hit.note_id, PDQ_STAGE)

    if visible is not None:
        admitted = visible(list(stages))
        stages = {n: found_in for n, found_in in stages.items() if n in admitted}
    t_rescore = time.perf_counter()
    query_shingles = shingles(joined_text(query_text), config.text.ngram)
    matches = []
    payloads: dict[str, dict[str, Any]] = {}
    for note_id, vectors in store.note_vectors(list(stages), dim).items():
        payloads[note_id] = vectors.payload
        g = float(np.clip(vectors.global_vector @ global_vector, -1.0, 1.0))
        evidence = _evidence(encoded, pdq, vectors, config)
        image_evidence = [e for e in evidence if e.query_kind in IMAGE_KINDS]
        whole = [e.effective_score for e in image_evidence if e.query_kind == ElementKind.IMAGE]
        n_query_images = sum(1 for q in encoded.locals if q.kind == ElementKind.IMAGE)
        if n_query_images and any(e.kind in IMAGE_KINDS for e in vectors.elements):
            image_coverage = sum(max(x, 0.0) for x in whole) / n_query_images
            note_score = config.global_weight * g + (1.0 - config.global_weight) * image_coverage
        else:
            note_score = g
        for e in image_evidence:
            bg = image_backgrounds.get((e.query_kind, e.query_index))
            if bg is not None:
                e.background, e.shift = bg, bg - config.background_reference
        local_score = max((e.normalised_score for e in image_evidence), default=0.0)
        raw_local = max((e.effective_score for e in image_evidence), default=0.0)
        candidate_text = [TextPiece(e.kind, e.index, e.text or "", v)
                          for e, v in zip(vectors.elements, vectors.element_vectors) if e.kind in TEXT_KINDS]
        ts = text_scores(query_text, backgrounds, candidate_text, config.text, query_shingles)
        text_score = max(ts.verbatim, config.semantic_weight * ts.semantic)
        score = combined_score(note_score, local_score, text_score, config)
        matches.append(Match(note_id, vectors.payload.get("title", ""), score, config.verdict(score), g,
                             note_score, local_score, stages[note_id], evidence, text_score, ts.verbatim,
                             ts.semantic, combined_score(note_score, raw_local, text_score, config)))
    t_verify = time.perf_counter()
    if images is not None:
        verify_matches(matches, payloads, images, config)
    matches.sort(key=lambda m: (-m.score, m.note_id))
    matches = matches[:limit]
    worst = max((m.verdict for m in matches), key=VERDICT_ORDER.__getitem__, default=CLEAR)
    timings = {"search": (t_rescore - t_search) * 1e3, "rescore": (t_verify - t_rescore) * 1e3}
    if images is not None and config.verify_candidates > 0:
        timings["verify"] = (time.perf_counter() - t_verify) * 1e3
    return AuditReport(encoded.note_id, encoded.model_version, worst, matches, report_config, len(stages),
                       timings_ms=timings)
