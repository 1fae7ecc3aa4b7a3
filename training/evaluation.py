"""`evaluate`: held-out quality of a compact checkpoint vs the untrained model and pHash / PDQ / MinHash, one run.

Held-out side (training.sft_data: products and photos never trained on). Notes: each held-out product's photos
split into notes of 2-4 photos (clothing: one photo each), with the product title and an evaluation review as body.
Families:
- copy: queries = one seeded copy edit of every note photo + distractor queries (edits of photos that have no
  reference); references = every note photo + unseen photos of training products. µAP (ISC 2021), recall@P90,
  recall@1. "+crops" scores a reference by the max over its whole image and fixed crops (the local vectors).
- image→note: the edited copy of a note photo finds its note among all notes.
- note→image: a note finds its photos among all references (P@5 over 1-4 relevant).
- text→note: a product description (never in any note) finds the product's notes.
- note↔note: a re-post (edited copies of the note's photos, same title, another review) finds its note; the
  product's other notes (same title, other photos) compete.
Every learned number at every Matryoshka dim (prefix, L2-renormalised).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from encoder.checkpoint import load_checkpoint
from encoder.compact import CompactUniNote
from encoder.text_pieces import split_body
from encoder.types import ElementKind
from training.band_negatives import embed_in_chunks
from training.baselines import hamming_similarity, image_hashes, minhash_similarity
from training.metrics import copy_detection_metrics, retrieval_metrics
from training.sft_batches import NoteSpec
from training.sft_compact_backbone import CompactSFTBackbone
from training.sft_config import SFTConfig
from training.sft_corpus import Corpus, CorpusFeatures, corpus_features, side_corpus

FAMILIES = ("image_note", "note_image", "text_note", "note_note")


@dataclass
class EvalRow:
    """One method at one dim (dim None for hashes). copy: µAP, recall@P90, recall@1 of copy detection;
    families: family -> (Recall@1, Precision@5)."""

    method: str
    dim: int | None
    copy_uap: float = float("nan")
    copy_recall_p90: float = float("nan")
    copy_recall_1: float = float("nan")
    families: dict[str, tuple[float, float]] = field(default_factory=dict)


@dataclass
class EvalTable:
    """rows: every (method, dim); counts: queries/references per family (what was measured)."""

    rows: list[EvalRow]
    counts: dict[str, int]

    def row(self, method: str, dim: int | None = None) -> EvalRow:
        """The row of `method` at `dim` (default: its largest dim). Raises KeyError."""
        rows = [r for r in self.rows if r.method == method and (dim is None or r.dim == dim)]
        if not rows:
            raise KeyError(f"no row for {method!r} at dim {dim}")
        return max(rows, key=lambda r: r.dim or 0)

    def to_markdown(self) -> str:
        """Three tables: copy detection, task families (R@1 / P@5), Matryoshka retention of R@1."""
        def f(x: float) -> str:
            return "—" if x != x else f"{x:.3f}"

        lines = ["| method | dim | copy µAP | copy R@P90 | copy R@1 |", "|---|---|---|---|---|"]
        for r in self.rows:
            if r.copy_uap == r.copy_uap:
                lines.append(f"| {r.method} | {r.dim or '—'} | {f(r.copy_uap)} | {f(r.copy_recall_p90)} | "
                             f"{f(r.copy_recall_1)} |")
        lines += ["", "| method | dim | " + " | ".join(f"{fam} R@1 / P@5" for fam in FAMILIES) + " |",
                  "|---|---|" + "---|" * len(FAMILIES)]
        for r in (r for r in self.rows if r.families):
            cells = [f"{f(r.families[fam][0])} / {f(r.families[fam][1])}" if fam in r.families else "—"
                     for fam in FAMILIES]
            lines.append(f"| {r.method} | {r.dim or '—'} | " + " | ".join(cells) + " |")
        lines += ["", "| method | dim | " + " | ".join(f"{fam} R@1 kept" for fam in ("copy",) + FAMILIES) + " |",
                  "|---|---|" + "---|" * (len(FAMILIES) + 1)]
        for method in dict.fromkeys(r.method for r in self.rows if r.dim and r.families):
            full = self.row(method)
            for r in (r for r in self.rows if r.method == method):
                kept = [r.copy_recall_1 / full.copy_recall_1 if full.copy_recall_1 else float("nan")]
                kept += [r.families[fam][0] / full.families[fam][0] if full.families.get(fam, (0,))[0] else float("nan")
                         for fam in FAMILIES]
                lines.append(f"| {method} | {r.dim} | " + " | ".join(f"{100 * k:.0f} %" if k == k else "—"
                                                                      for k in kept) + " |")
        counts = ", ".join(f"{k} {v}" for k, v in self.counts.items())
        return "\n".join(lines) + f"\n\nMeasured on: {counts}.\n"


@dataclass
class EvalSet:
    """The held-out queries and candidates, as corpus indices."""

    notes: list[NoteSpec]
    note_product: list[int]
    note_photos: list[list[int]]
    references: list[int]  # photo indices
    copy_queries: list[int]  # view indices (edited)
    copy_truth: np.ndarray  # (Q, R) bool
    reposts: list[NoteSpec]
    descriptions: list[str]
    description_product: list[int]
    note_texts: list[str] = field(default_factory=list)
    repost_texts: list[str] = field(default_factory=list)


def build_eval_set(c: Corpus, seed: int = 0) -> EvalSet:
    """Deterministic held-out notes, copy queries and family queries from the evaluation corpus."""
    rng = np.random.default_rng(seed + 99)
    notes, note_product, note_photos, reposts, note_texts, repost_texts = [], [], [], [], [], []
    review = 0

    def body(r: int) -> list[tuple[ElementKind, int]]:
        return [(ElementKind.BODY, t) for t in c.review_texts[r % len(c.review_texts)]]

    for prod in range(len(c.products)):
        photos = c.product_photos(prod)
        start = 0
        while start < len(photos):
            k = 1 if len(photos) == 1 else int(rng.integers(2, 5))
            group = photos[start : start + k]
            start += k
            if len(group) < 2 and len(photos) > 1:
                continue  # a leftover single photo of a multi-photo product stays a plain reference
            title = [(ElementKind.TITLE, c.title_text[prod])]
            notes.append(NoteSpec([c.original_view[p] for p in group], title + body(review)))
            reposts.append(NoteSpec([c.edited_views[p][0] for p in group], title + body(review + 1)))
            note_texts.append(" ".join(c.texts[t] for _, t in notes[-1].texts))
            repost_texts.append(" ".join(c.texts[t] for _, t in reposts[-1].texts))
            note_product.append(prod)
            note_photos.append(group)
            review += 2
    references = [p for p in range(len(c.photos)) if c.original_view[p] >= 0]
    noted = sorted(p for g in note_photos for p in g)
    distractors = [p for p in range(len(c.photos)) if c.original_view[p] < 0]
    copy_queries = [c.edited_views[p][0] for p in noted + distractors]
    ref_pos = {p: i for i, p in enumerate(references)}
    truth = np.zeros((len(copy_queries), len(references)), dtype=bool)
    for qi, p in enumerate(noted):
        truth[qi, ref_pos[p]] = True
    descriptions, description_product = [], []
    for prod, product in enumerate(c.products):
        if product.description and any(np_ == prod for np_ in note_product):
            descriptions.append(split_body(product.description, 160, 1)[0])
            description_product.append(prod)
    return EvalSet(notes, note_product, note_photos, references, copy_queries, truth, reposts, descriptions,
                   description_product, note_texts, repost_texts)


def _prefix(x: torch.Tensor, d: int) -> np.ndarray:
    return F.normalize(x[..., :d], dim=-1).numpy()


def _relevance(es: EvalSet, c: Corpus) -> dict[str, np.ndarray]:
    n_notes = len(es.notes)
    photo_note = {p: i for i, g in enumerate(es.note_photos) for p in g}
    noted = sorted(photo_note)
    rel = {"image_note": np.zeros((len(noted), n_notes), dtype=bool)}
    for qi, p in enumerate(noted):
        rel["image_note"][qi, photo_note[p]] = True
    ref_pos = {p: i for i, p in enumerate(es.references)}
    rel["note_image"] = np.zeros((n_notes, len(es.references)), dtype=bool)
    for i, g in enumerate(es.note_photos):
        rel["note_image"][i, [ref_pos[p] for p in g]] = True
    rel["text_note"] = np.array([[es.note_product[j] == prod for j in range(n_notes)] for prod in es.description_product],
                                dtype=bool).reshape(len(es.description_product), n_notes)
    rel["note_note"] = np.eye(n_notes, dtype=bool)
    return rel


@torch.no_grad()
def evaluate_model(model: CompactUniNote, method: str, c: Corpus, feats: CorpusFeatures, es: EvalSet) -> list[EvalRow]:
    """Rows of one learned model at each of its Matryoshka dims."""
    model.eval()
    regions = torch.cat([model.embed_regions(feats.views[s : s + 512].float())
                         for s in range(0, len(feats.views), 512)])  # (V, R, D)
    views = regions[:, 0]  # (V, D)
    backbone = CompactSFTBackbone(model, feats)  # the training route: the same fusion of the same tokens
    notes = embed_in_chunks(backbone.embed_notes, es.notes, chunk=256)  # (N, D)
    reposts = embed_in_chunks(backbone.embed_notes, es.reposts, chunk=256)  # (N, D)
    desc = model.embed_texts(model.text_features(es.descriptions)) if es.descriptions else torch.zeros(0, views.shape[1])
    ref_views = [c.original_view[p] for p in es.references]
    photo_note = {p: i for i, g in enumerate(es.note_photos) for p in g}
    image_queries = [c.edited_views[p][0] for p in sorted(photo_note)]
    rel = _relevance(es, c)
    rows = []
    for d in model.config.dims:
        for crops in (False, True):
            q = _prefix(views[es.copy_queries], d)  # (Q, d)
            if crops:
                refs = _prefix(regions[ref_views], d)  # (Rf, R, d)
                sim = np.einsum("qd,rkd->qrk", q, refs).max(axis=-1)
            else:
                sim = q @ _prefix(views[ref_views], d).T  # (Q, Rf)
            cm = copy_detection_metrics(sim, es.copy_truth)
            row = EvalRow(method + (" +crops" if crops else ""), d, cm.micro_ap, cm.recall_at_p90, cm.recall_at_1)
            if not crops:
                sims = {
                    "image_note": _prefix(views[image_queries], d) @ _prefix(notes, d).T,
                    "note_image": _prefix(notes, d) @ _prefix(views[ref_views], d).T,
                    "text_note": _prefix(desc, d) @ _prefix(notes, d).T,
                    "note_note": _prefix(reposts, d) @ _prefix(notes, d).T,
                }
                for fam, s in sims.items():
                    if len(s):
                        m = retrieval_metrics(s, rel[fam])
                        row.families[fam] = (m.recall_at_1, m.precision_at_5)
            rows.append(row)
    return rows


def evaluate_hashes(c: Corpus, es: EvalSet, cache_dir: Path | None = None) -> list[EvalRow]:
    """pHash and PDQ rows (copy, image→note, note→image by max/min over a note's photos) and MinHash rows
    (text→note, note↔note on the notes' text)."""
    hashes = image_hashes(c.views, cache_dir)
    rel = _relevance(es, c)
    ref_views = [c.original_view[p] for p in es.references]
    photo_note = {p: i for i, g in enumerate(es.note_photos) for p in g}
    image_queries = [c.edited_views[p][0] for p in sorted(photo_note)]
    rows = []
    for name in ("phash", "pdq"):
        bits = hashes[name]
        cm = copy_detection_metrics(hamming_similarity(bits[es.copy_queries], bits[ref_views]), es.copy_truth)
        row = EvalRow(name, None, cm.micro_ap, cm.recall_at_p90, cm.recall_at_1)
        q_ref = hamming_similarity(bits[image_queries], bits[ref_views])  # (Q, Rf)
        ref_pos = {p: i for i, p in enumerate(es.references)}
        note_cols = [[ref_pos[p] for p in g] for g in es.note_photos]
        img_note = np.stack([q_ref[:, cols].max(axis=1) for cols in note_cols], axis=1)  # (Q, N)
        m = retrieval_metrics(img_note, rel["image_note"])
        row.families["image_note"] = (m.recall_at_1, m.precision_at_5)
        note_views = [[c.original_view[p] for p in g] for g in es.note_photos]
        all_ref = hamming_similarity(bits[[v for g in note_views for v in g]], bits[ref_views])
        splits = np.cumsum([len(g) for g in note_views])[:-1]
        note_img = np.stack([part.max(axis=0) for part in np.split(all_ref, splits)])  # (N, Rf)
        m = retrieval_metrics(note_img, rel["note_image"])
        row.families["note_image"] = (m.recall_at_1, m.precision_at_5)
        rows.append(row)
    row = EvalRow("minhash", None)
    if es.descriptions:
        m = retrieval_metrics(minhash_similarity(es.descriptions, es.note_texts), rel["text_note"])
        row.families["text_note"] = (m.recall_at_1, m.precision_at_5)
    m = retrieval_metrics(minhash_similarity(es.repost_texts, es.note_texts), rel["note_note"])
    row.families["note_note"] = (m.recall_at_1, m.precision_at_5)
    rows.append(row)
    return rows


def evaluate(checkpoint: Path, *, config_path: Path | None = None, baselines: bool = True,
             untrained: bool = True, progress: bool = False, print_table: bool = True) -> EvalTable:
    """Evaluate a compact checkpoint folder on the held-out split; with the untrained model (CompactConfig seed 0
    heads) and the hashes in the same run when asked. Prints the markdown table when print_table.

    config_path: the SFTConfig whose [data] defines the split (default: training/configs/sft_compact.toml).
    Raises FileNotFoundError (checkpoint or data missing), encoder.checkpoint.CheckpointError.
    """
    config_path = config_path or Path(__file__).resolve().parent / "configs" / "sft_compact.toml"
    cfg = SFTConfig.load(config_path)
    model = load_checkpoint(Path(checkpoint))
    c = side_corpus(cfg.data, held_out=True)
    cache = Path(cfg.data.cache_dir) if cfg.data.cache_dir else None
    feats = corpus_features(model, c, cache, progress=progress)
    es = build_eval_set(c, cfg.data.seed)
    rows = evaluate_model(model, "trained", c, feats, es)
    if untrained:
        base = CompactUniNote(model.config)  # the same config and seed: the heads before training
        rows += evaluate_model(base, "untrained", c, feats, es)
    if baselines:
        rows += evaluate_hashes(c, es, cache)
    counts = {"notes": len(es.notes), "copy queries": len(es.copy_queries),
              "distractor queries": int((~es.copy_truth.any(axis=1)).sum()), "references": len(es.references),
              "description queries": len(es.descriptions)}
    table = EvalTable(rows, counts)
    if print_table:
        print(table.to_markdown())
    return table
