"""Is an int8 image tower good enough? Copy µAP and speed of the ONNX image tower in fp32, int8 dynamic and
int8 static (QDQ, calibrated) quantisation, on a held-out copy set built from ../shared/data.

Run by hand:  .venv/bin/python benchmarks/bench_onnx_int8.py [--refs 200] [--threads 1]

Copy set: `--refs` reference photos (clothing test + grocery val, every other class mixed), one query per
reference edited by training/edits.py (random edit, seed = index) plus refs/4 distractor queries (photos of
the same data sets not among the references); calibration photos come from the grocery *train* split
(disjoint). Vectors: the shipped checkpoint's whole-image vector (region 0, full dim) on each tower.
µAP per ISC (training/metrics.copy_detection_metrics). The rule (issue 13): int8 only if µAP loss <= 0.005.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from encoder.checkpoint import load_checkpoint
from encoder.loading import DEFAULT_CHECKPOINT
from encoder.onnx_tower import OnnxImageTower, export_bytes
from encoder.threads import apply_threads
from training.edits import random_edit
from training.metrics import copy_detection_metrics

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
MAX_LOSS = 0.005


def photo_paths(n_refs: int) -> tuple[list[Path], list[Path], list[Path]]:
    """(references, distractors, calibration) paths, disjoint."""
    pool = sorted((DATA / "clothing" / "test").rglob("*.jpg")) + sorted((DATA / "grocery" / "dataset" / "val").rglob("*.jpg"))
    if not pool:
        raise SystemExit(f"no photos under {DATA.resolve()}")
    rng = np.random.default_rng(0)
    order = rng.permutation(len(pool))
    refs = [pool[i] for i in order[:n_refs]]
    distractors = [pool[i] for i in order[n_refs : n_refs + n_refs // 4]]
    calib = sorted((DATA / "grocery" / "dataset" / "train").rglob("*.jpg"))[::40][:48]
    return refs, distractors, calib


def vectors(model, runner, images: list[Image.Image], chunk: int = 16) -> np.ndarray:
    """N images -> (N, D) float32 whole-image vectors through `runner` (the tower's replacement)."""
    model.image_runner = runner
    out = []
    with torch.inference_mode():
        for s in range(0, len(images), chunk):
            feats = model.region_features(images[s : s + chunk])  # (b, R, 1280)
            out.append(model.embed_regions(feats)[:, 0].numpy())  # (b, D)
    model.image_runner = None
    return np.concatenate(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--refs", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    apply_threads(args.threads)
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static

    model = load_checkpoint(DEFAULT_CHECKPOINT)
    tower = model.image_tower
    refs, distractors, calib = photo_paths(args.refs)
    ref_images = [Image.open(p).convert("RGB") for p in refs]
    queries = [random_edit(im, np.random.default_rng(i))[1] for i, im in enumerate(ref_images)]
    queries += [Image.open(p).convert("RGB") for p in distractors]
    truth = np.zeros((len(queries), len(refs)), dtype=bool)
    truth[np.arange(len(refs)), np.arange(len(refs))] = True

    work = Path(tempfile.mkdtemp(prefix="uninote-int8-"))
    fp32 = work / "fp32.onnx"
    fp32.write_bytes(export_bytes(tower))

    class Calib(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"pixels": tower.preprocess([Image.open(p).convert("RGB")]).numpy()} for p in calib])

        def get_next(self):
            return next(self.batches, None)

    quantize_dynamic(str(fp32), str(work / "dyn.onnx"), weight_type=QuantType.QInt8)
    quantize_static(str(fp32), str(work / "static.onnx"), Calib(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    runners = {"torch fp32": None, "onnx fp32": OnnxImageTower(str(fp32), tower.image_size),
               "onnx int8 dynamic": OnnxImageTower(str(work / "dyn.onnx"), tower.image_size),
               "onnx int8 static": OnnxImageTower(str(work / "static.onnx"), tower.image_size)}
    pixels = tower.preprocess(ref_images[:3])  # (3, 3, S, S): one note's images
    rows = []
    base_ap = None
    for name, runner in runners.items():
        f = runner or tower
        f(pixels)
        t0 = time.perf_counter()
        for _ in range(5):
            f(pixels)
        ms = (time.perf_counter() - t0) / 5 * 1e3
        r, q = vectors(model, runner, ref_images), vectors(model, runner, queries)
        m = copy_detection_metrics(q @ r.T, truth)
        base_ap = m.micro_ap if base_ap is None else base_ap
        rows.append((name, m.micro_ap, base_ap - m.micro_ap, m.recall_at_1, ms))
    print(f"\ncopy set: {len(refs)} references, {len(refs)} edited copies + {len(distractors)} distractors; "
          f"{args.threads} thread(s)\n")
    print(f"| tower | copy µAP | loss vs torch | recall@1 | ms / 3 images | int8 allowed (loss <= {MAX_LOSS}) |")
    print("|---|---|---|---|---|---|")
    for name, ap_, loss, r1, ms in rows:
        allowed = "-" if "int8" not in name else ("yes" if loss <= MAX_LOSS else "no")
        print(f"| {name} | {ap_:.4f} | {loss:+.4f} | {r1:.3f} | {ms:.0f} | {allowed} |")


if __name__ == "__main__":
    main()
