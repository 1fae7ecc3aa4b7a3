"""Descriptors and scores for the copy benchmark (benchmarks/bench_copy.py): towers, regions, hashes, verification.

Region sets (multi-scale regions of ONE feature map, encoder.pooling.region_gem): "whole" (0, 0, 1, 1); "centre"
(0.2-0.8 box); "2x2" (four quarters); "3x3" (nine cells). A descriptor = L2(GeM) of a region, then the tower's
PCA whitening (when it has one) and L2 again. The score of (query, reference) with regions is the max cosine
over (query region, reference whole-image) and (query whole-image, reference region) pairs: a query that holds
the reference (collage cell, paste, screenshot) matches through one of its regions, a query that is a crop of the
reference through one of the reference's regions.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from encoder.pooling import region_gem
from encoder.towers import ImageTower
from encoder.types import Box

REGION_SETS: dict[str, tuple[Box, ...]] = {
    "whole": ((0.0, 0.0, 1.0, 1.0),),
    "centre": ((0.2, 0.2, 0.8, 0.8),),
    "2x2": tuple((x / 2, y / 2, (x + 1) / 2, (y + 1) / 2) for y in range(2) for x in range(2)),
    "3x3": tuple((x / 3, y / 3, (x + 1) / 3, (y + 1) / 3) for y in range(3) for x in range(3)),
}


def load_images(paths: Sequence[Path]) -> list[Image.Image]:
    out = []
    for p in paths:
        with Image.open(p) as im:
            out.append(im.convert("RGB"))
    return out


def region_boxes(names: Sequence[str]) -> tuple[Box, ...]:
    """The boxes of the named region sets, "whole" first. Raises KeyError for an unknown name."""
    boxes: list[Box] = list(REGION_SETS["whole"])
    for n in names:
        if n != "whole":
            boxes += REGION_SETS[n]
    return tuple(boxes)


@torch.no_grad()
def tower_descriptors(tower: ImageTower, images: Sequence[Image.Image], boxes: Sequence[Box], *,
                      gem_p: float = 3.0, whiten: bool = True, batch: int = 16) -> tuple[np.ndarray, float]:
    """(N, R, d) float32 L2-normalised region descriptors (R = len(boxes), box 0 = whole image first) and img/s."""
    out, t0 = [], time.perf_counter()
    for i in range(0, len(images), batch):
        fmap = tower(tower.preprocess(images[i : i + batch]))  # (B, 1280, h, w)
        d = torch.nn.functional.normalize(region_gem(fmap, boxes, p=gem_p), dim=-1)  # (B, R, 1280)
        if whiten and getattr(tower, "whitening", None) is not None:
            d = tower.whitening(d)  # (B, R, dw)
        out.append(d.numpy())
    return np.concatenate(out), len(images) / (time.perf_counter() - t0)


def region_similarity(q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """q (Q, Rq, d), r (R, Rr, d) -> (Q, R): max of whole·whole, q-regions·r-whole and q-whole·r-regions cosines."""
    s = q[:, 0] @ r[:, 0].T  # (Q, R)
    if q.shape[1] > 1:
        s = np.maximum(s, np.einsum("qkd,rd->qrk", q[:, 1:], r[:, 0]).max(axis=2))
    if r.shape[1] > 1:
        s = np.maximum(s, np.einsum("qd,rkd->qrk", q[:, 0], r[:, 1:]).max(axis=2))
    return s


@torch.no_grad()
def shipped_image_vectors(images: Sequence[Image.Image], batch: int = 16,
                          checkpoint: Path | None = None) -> tuple[np.ndarray, float]:
    """(N, D) whole-image vectors of a compact checkpoint (default: the shipped one; its image tower + trained
    image head), img/s."""
    from encoder.checkpoint import load_checkpoint
    from encoder.loading import DEFAULT_CHECKPOINT

    model = load_checkpoint(checkpoint or DEFAULT_CHECKPOINT)
    out, t0 = [], time.perf_counter()
    for i in range(0, len(images), batch):
        out.append(model.embed_regions(model.region_features(images[i : i + batch]))[:, 0].numpy())
    return np.concatenate(out), len(images) / (time.perf_counter() - t0)


def hash_bits(images: Sequence[Image.Image]) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """{"phash": (N, 64), "pdq": (N, 256)} uint8 bits and img/s of each (imagehash.phash; app.image_hashes)."""
    import imagehash

    from app.image_hashes import pdq_hash

    t0 = time.perf_counter()
    ph = np.stack([imagehash.phash(im).hash.reshape(-1) for im in images]).astype(np.uint8)
    t1 = time.perf_counter()
    pdq = np.stack([np.asarray(pdq_hash(im).bits, dtype=np.uint8) for im in images])
    t2 = time.perf_counter()
    return {"phash": ph, "pdq": pdq}, {"phash": len(images) / (t1 - t0), "pdq": len(images) / (t2 - t1)}


def background_normalised(sim: np.ndarray, q_desc: np.ndarray, bg_desc: np.ndarray, k: int = 1,
                          beta: float = 1.0) -> np.ndarray:
    """SSCD score normalisation (Pizzi et al. 2022, §4.2): sim (Q, R) minus beta x each query's k-th highest
    cosine to a background set of unrelated photos. q_desc (Q, d), bg_desc (B, d) whole-image descriptors."""
    bg = q_desc @ bg_desc.T  # (Q, B)
    kth = -np.partition(-bg, k - 1, axis=1)[:, k - 1]  # (Q,)
    return sim - beta * kth[:, None]
