"""The held-out DISC21-style copy-detection set: references, edited queries, edited distractors, cached on disk.

Photos no training run sees (training.sft_data, training.grpo_data and training.copy_data train only on grocery
products with class id != 4 mod 5 and clothing `train/`):
- references (500 by default): the bundled scikit-image photographs (`skimage.data`, no download; photos unlike
  the shared data), then, half each, photos of the held-out grocery products (class id = 4 mod 5, any list) and
  clothing `test/` photos;
- distractor queries (30 %): edited photos with no reference: half clothing `validation/`, half other photos of
  the held-out grocery products (same product as some reference, a different photo: the hard case);
- second photos for paste / collage: held-out photos that are neither references nor distractor sources.
Positive queries cycle through the copy families (training.copy_edits.COPY_FAMILIES) over a seeded order of the
references, so every family gets >= n_positive // 16 queries; distractors cycle through the families too.

`build_copy_benchmark` renders everything once (JPEG quality 95; about 1 min) into
`<cache_dir>/<key>/{refs,queries}/NNNN.jpg` with `manifest.json`; later calls reuse the files.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from training.copy_data import load_photos
from training.copy_edits import COPY_FAMILIES, apply_family
from training.sft_data import HELD_OUT_MOD, HELD_OUT_REM, data_root

SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "clock", "hubble_deep_field",
                  "immunohistochemistry", "moon", "grass", "gravel", "brick", "retina", "horse", "page", "logo",
                  "cell")  # `cat` is `chelsea` again; the rest of skimage.data needs a download
DEFAULT_CACHE = Path(os.environ.get("UNINOTE_COPY_BENCH_DIR", Path(tempfile.gettempdir()) / "uninote_copy_bench"))


@dataclass(frozen=True)
class CopyBenchmark:
    """refs: R reference image files; queries: Q query files; query_family: Q family names; query_ref: (Q,) int64,
    the reference index of each query's source or -1 for a distractor."""

    refs: list[Path]
    queries: list[Path]
    query_family: list[str]
    query_ref: np.ndarray

    @property
    def truth(self) -> np.ndarray:
        """(Q, R) bool: truth[q, r] = reference r is the source of query q."""
        t = np.zeros((len(self.queries), len(self.refs)), dtype=bool)
        pos = self.query_ref >= 0
        t[np.nonzero(pos)[0], self.query_ref[pos]] = True
        return t


def _skimage_photo(name: str) -> Image.Image:
    import skimage.data

    arr = getattr(skimage.data, name)()
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    return Image.fromarray(arr[..., :3].astype(np.uint8)).convert("RGB")


def held_out_sources(root: Path | None = None) -> tuple[list[Path], list[Path], list[Path]]:
    """(held-out grocery product photos, clothing test/ photos, clothing validation/ photos), sorted paths."""
    root = data_root(root)
    base = root / "grocery" / "dataset"
    grocery = set()
    for split in ("train", "val", "test"):
        for line in (base / f"{split}.txt").read_text(encoding="utf-8").splitlines():
            if line.strip():
                rel, fine, _ = (x.strip() for x in line.split(","))
                if int(fine) % HELD_OUT_MOD == HELD_OUT_REM and (base / rel).is_file():
                    grocery.add(base / rel)  # test.txt photos are listed but not shipped in ../shared/data
    clothing = root / "clothing"
    return sorted(grocery), sorted(clothing.glob("test/*/*.jpg")), sorted(clothing.glob("validation/*/*.jpg"))


def build_copy_benchmark(root: Path | None = None, cache_dir: Path | None = None, *, n_refs: int = 500,
                         n_positive: int = 700, n_distractors: int = 300, seed: int = 0) -> CopyBenchmark:
    """Build (or reuse) the benchmark files; see the module doc. Raises FileNotFoundError without the shared data
    and ValueError when the held-out photos cannot fill the requested counts."""
    grocery, cl_test, cl_val = held_out_sources(root)
    rng = random.Random(seed)
    for lst in (grocery, cl_test, cl_val):
        rng.shuffle(lst)
    n_photo_refs = n_refs - len(SKIMAGE_PHOTOS)
    n_g = n_photo_refs // 2
    n_c = n_photo_refs - n_g
    ref_src: list[str] = [f"skimage:{n}" for n in SKIMAGE_PHOTOS] + [str(p) for p in grocery[:n_g] + cl_test[:n_c]]
    d_c = n_distractors // 2
    distractor_src = [str(p) for p in cl_val[:d_c] + grocery[n_g : n_g + n_distractors - d_c]]
    others_src = [str(p) for p in cl_val[d_c:] + grocery[n_g + n_distractors - d_c:] + cl_test[n_c:]]
    if len(ref_src) < n_refs or len(distractor_src) < n_distractors or len(others_src) < 20:
        raise ValueError(f"not enough held-out photos for {n_refs} references and {n_distractors} distractors")
    key = hashlib.sha256(json.dumps([ref_src, distractor_src, others_src[:200], n_positive, seed,
                                     list(COPY_FAMILIES), "v1"]).encode()).hexdigest()[:16]
    folder = Path(cache_dir or DEFAULT_CACHE) / key
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        _render(folder, ref_src, distractor_src, others_src[:200], n_positive, seed)
    m = json.loads(manifest.read_text(encoding="utf-8"))
    return CopyBenchmark([folder / r for r in m["refs"]], [folder / q["file"] for q in m["queries"]],
                         [q["family"] for q in m["queries"]], np.array([q["ref"] for q in m["queries"]], dtype=np.int64))


def _load(src: str) -> Image.Image:
    if src.startswith("skimage:"):
        img = _skimage_photo(src.split(":", 1)[1])
        img.thumbnail((512, 512), Image.Resampling.BILINEAR)
        return img
    return load_photos([Path(src)])[0]


def _render(folder: Path, ref_src: list[str], distractor_src: list[str], others_src: list[str], n_positive: int,
            seed: int) -> None:
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "queries").mkdir(parents=True, exist_ok=True)
    others = [_load(s) for s in others_src]
    families = list(COPY_FAMILIES)
    refs = []
    for i, src in enumerate(ref_src):
        name = f"refs/{i:04d}.jpg"
        _load(src).save(folder / name, quality=95)
        refs.append(name)
    order = list(range(len(ref_src)))
    random.Random(seed + 1).shuffle(order)
    jobs = [(ref_src[order[k % len(order)]], order[k % len(order)], families[k % len(families)])
            for k in range(n_positive)]
    jobs += [(src, -1, families[k % len(families)]) for k, src in enumerate(distractor_src)]
    queries = []
    for k, (src, ref, family) in enumerate(jobs):
        name = f"queries/{k:04d}.jpg"
        apply_family(family, _load(src), seed * 100_003 + k, others).save(folder / name, quality=95)
        queries.append({"file": name, "family": family, "ref": ref, "source": src})
    tmp = folder / "manifest.tmp"
    tmp.write_text(json.dumps({"refs": refs, "ref_sources": ref_src, "queries": queries}, indent=0), encoding="utf-8")
    tmp.replace(folder / "manifest.json")
