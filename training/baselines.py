"""Non-learned baselines measured beside the model in every evaluation run.

Images: pHash (`imagehash.phash`, 64-bit DCT hash) and PDQ (Meta, `pdqhash`, 256 bits, via app.image_hashes);
similarity = -Hamming distance, so higher is more similar like a cosine. Text: MinHash (`datasketch`, 128
permutations) over character 3-shingles (works for Chinese and English alike); similarity = estimated Jaccard.
Image hashes of a view list are cached beside the tower features (rendering the edits is the slow part).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

import imagehash
import numpy as np
from datasketch import MinHash

from app.image_hashes import pdq_hash
from training.feature_cache import DEFAULT_CACHE_DIR, ImageView


def image_hashes(views: Sequence[ImageView], cache_dir: Path | None = None) -> dict[str, np.ndarray]:
    """{"phash": (V, 64) uint8 bits, "pdq": (V, 256) uint8 bits} of the rendered views, cached as one .npz."""
    cache = Path(cache_dir or DEFAULT_CACHE_DIR) / "hashes"
    cache.mkdir(parents=True, exist_ok=True)
    file = cache / (hashlib.sha256(json.dumps([v.key for v in views]).encode()).hexdigest()[:20] + ".npz")
    if file.is_file():
        with np.load(file) as z:
            return {"phash": z["phash"], "pdq": z["pdq"]}
    ph = np.zeros((len(views), 64), dtype=np.uint8)
    pdq = np.zeros((len(views), 256), dtype=np.uint8)
    for i, v in enumerate(views):
        img = v.render()
        ph[i] = imagehash.phash(img).hash.reshape(-1)
        pdq[i] = pdq_hash(img).bits
    np.savez(file.with_suffix(".tmp.npz"), phash=ph, pdq=pdq)
    file.with_suffix(".tmp.npz").replace(file)
    return {"phash": ph, "pdq": pdq}


def hamming_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(Q, n) and (C, n) 0/1 bits -> (Q, C) float32 = -Hamming distance."""
    a, b = a.astype(np.float32), b.astype(np.float32)
    dist = a @ (1 - b).T + (1 - a) @ b.T  # (Q, C)
    return -dist


def minhash_signatures(texts: Sequence[str], num_perm: int = 128, shingle: int = 3) -> list[MinHash]:
    """One MinHash per text over its character `shingle`-grams (the whole text when shorter)."""
    out = []
    for t in texts:
        m = MinHash(num_perm=num_perm, seed=1)
        t = " ".join(t.split())
        grams = {t[i : i + shingle] for i in range(max(1, len(t) - shingle + 1))}
        m.update_batch([g.encode("utf-8") for g in grams])
        out.append(m)
    return out


def minhash_similarity(queries: Sequence[str], candidates: Sequence[str]) -> np.ndarray:
    """(Q, C) float32 MinHash Jaccard estimates."""
    sq, sc = minhash_signatures(queries), minhash_signatures(candidates)
    hq = np.stack([m.hashvalues for m in sq]) if sq else np.zeros((0, 128))  # (Q, P)
    hc = np.stack([m.hashvalues for m in sc]) if sc else np.zeros((0, 128))  # (C, P)
    return (hq[:, None, :] == hc[None, :, :]).mean(axis=-1).astype(np.float32)
