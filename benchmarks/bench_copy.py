"""Held-out DISC21-style copy detection: hashes, ImageNet GeM, the shipped encoder, the copy-trained tower,
multi-scale regions and geometric verification, in one run.

    .venv/bin/python benchmarks/bench_copy.py [--weights encoder/checkpoints/copy_tower/tower.safetensors]
                                              [--threads 2] [--verify-top 3] [--out results.json]

The set (training/copy_benchmark.py): 500 references (scikit-image photos + held-out grocery products + clothing
test/), 1,000 queries = 700 edited copies over 16 families + 300 edited distractors; rendered once into a temp
folder. Metrics (training/metrics.py, ISC 2021): µAP over all (query, top-10 reference) predictions with the
distractors, recall at precision 0.9, recall@1; per family, the same over that family's copies + distractors.
img/s = descriptor throughput of the image path (decode excluded) at --threads torch threads on this machine.
Points = vectors stored per image. "+ verification" re-scores each query's top --verify-top references with
app/geometric_verification.py (score += inlier score).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from training.copy_benchmark import build_copy_benchmark  # noqa: E402
from training.copy_edits import COPY_FAMILIES  # noqa: E402
from training.copy_eval import (hash_bits, load_images, region_boxes, region_similarity,  # noqa: E402
                                shipped_image_vectors, tower_descriptors)
from training.metrics import copy_detection_metrics  # noqa: E402


def _hamming_sim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float32), b.astype(np.float32)
    return -(a @ (1 - b).T + (1 - a) @ b.T)  # (Q, R)


def _select(d: np.ndarray, idx: list[int]) -> np.ndarray:
    return d[:, idx]


def _verify_rescore(sim: np.ndarray, queries, refs, top: int) -> tuple[np.ndarray, float]:
    from app.geometric_verification import local_features, match

    t0 = time.perf_counter()
    ref_f = [local_features(im) for im in refs]
    out = sim.copy()
    for q, im in enumerate(queries):
        qf, qm = local_features(im), local_features(im, mirror=True)
        for r in np.argsort(-sim[q])[:top]:
            v = max(match(qf, ref_f[r]).score, match(qm, ref_f[r], mirrored=True).score)
            out[q, r] = sim[q, r] + v
    return out, len(queries) / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=ROOT / "encoder" / "checkpoints" / "copy_tower" / "tower.safetensors")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--verify-top", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from encoder.towers import ImageTower

    t_start = time.perf_counter()
    bench = build_copy_benchmark()
    truth, families = bench.truth, np.array(bench.query_family)
    refs, queries = load_images(bench.refs), load_images(bench.queries)
    print(f"set: {len(refs)} references, {len(queries)} queries ({int((bench.query_ref < 0).sum())} distractors), "
          f"{len(COPY_FAMILIES)} families; torch threads {args.threads}", flush=True)
    rows: list[tuple[str, np.ndarray, float, int]] = []  # (name, similarity, img/s, points per image)

    hq, speed = hash_bits(queries)
    hr, _ = hash_bits(refs)
    rows.append(("pHash (64 bit)", _hamming_sim(hq["phash"], hr["phash"]), speed["phash"], 1))
    rows.append(("PDQ (256 bit)", _hamming_sim(hq["pdq"], hr["pdq"]), speed["pdq"], 1))
    print("hashes done", flush=True)

    all_boxes = region_boxes(["centre", "2x2", "3x3"])  # whole, centre, 4 quarters, 9 cells = 15
    subsets = {"whole": [0], "+ centre": [0, 1], "+ centre + 2x2": list(range(6)), "+ centre + 2x2 + 3x3": list(range(15))}

    imagenet = ImageTower("efficientnet-lite0", args.image_size)
    q_in, sp_in = tower_descriptors(imagenet, queries, all_boxes)
    r_in, _ = tower_descriptors(imagenet, refs, all_boxes)
    rows.append(("ImageNet Lite0 GeM (whole)", region_similarity(q_in[:, :1], r_in[:, :1]), sp_in, 1))
    rows.append(("ImageNet Lite0 GeM + centre + 2x2 + 3x3", region_similarity(q_in, r_in), sp_in, 15))
    print("imagenet done", flush=True)

    q_sh, sp_sh = shipped_image_vectors(queries)
    r_sh, _ = shipped_image_vectors(refs)
    rows.append(("shipped encoder image vector (compact)", q_sh @ r_sh.T, sp_sh, 1))
    print("shipped done", flush=True)

    copy = ImageTower("efficientnet-lite0-copy", args.image_size, weights_path=str(args.weights))
    q_raw, sp_cp = tower_descriptors(copy, queries, all_boxes, whiten=False)
    r_raw, _ = tower_descriptors(copy, refs, all_boxes, whiten=False)
    rows.append(("copy tower, no whitening (whole)", region_similarity(q_raw[:, :1], r_raw[:, :1]), sp_cp, 1))
    w = copy.whitening
    q_cp = w(torch.from_numpy(q_raw)).numpy()
    r_cp = w(torch.from_numpy(r_raw)).numpy()
    best_name, best_sim, best_map = "", None, -1.0
    for label, idx in subsets.items():
        sim = region_similarity(_select(q_cp, idx), _select(r_cp, idx))
        name = f"copy tower + whitening ({label})" if label == "whole" else f"copy tower + whitening {label}"
        rows.append((name, sim, sp_cp, len(idx)))
        m = copy_detection_metrics(sim, truth).micro_ap
        if m > best_map:
            best_name, best_sim, best_map = label, sim, m
    print("copy tower done", flush=True)

    if args.verify_top > 0:
        global_sim = region_similarity(q_cp[:, :1], r_cp[:, :1])
        v_sim, v_speed = _verify_rescore(global_sim, queries, refs, args.verify_top)
        rows.append((f"copy tower (whole) + verification of top {args.verify_top}", v_sim, v_speed, 1))
        if best_name != "whole":
            v_sim2, _ = _verify_rescore(best_sim, queries, refs, args.verify_top)
            rows.append((f"copy tower {best_name} + verification of top {args.verify_top}", v_sim2, v_speed,
                         len(subsets[best_name])))
        print("verification done", flush=True)

    fams = list(COPY_FAMILIES)
    results = []
    print("\n| system | points/img | µAP | R@P90 | R@1 | img/s |\n|---|---|---|---|---|---|")
    for name, sim, speed, points in rows:
        m = copy_detection_metrics(sim, truth)
        per = {f: copy_detection_metrics(sim[families == f], truth[families == f]).micro_ap for f in fams}
        results.append({"system": name, "points": points, "micro_ap": m.micro_ap, "recall_at_p90": m.recall_at_p90,
                        "recall_at_1": m.recall_at_1, "img_per_s": speed, "per_family_micro_ap": per})
        print(f"| {name} | {points} | {m.micro_ap:.3f} | {m.recall_at_p90:.3f} | {m.recall_at_1:.3f} | {speed:.1f} |")
    print("\nµAP per family (that family's copies + its distractors)\n")
    print("| system | " + " | ".join(fams) + " | min |\n|---|" + "---|" * (len(fams) + 1))
    for r in results:
        vals = [r["per_family_micro_ap"][f] for f in fams]
        print(f"| {r['system']} | " + " | ".join(f"{v:.2f}" for v in vals) + f" | {min(vals):.2f} |")
    print(f"\n(benchmark ran in {time.perf_counter() - t_start:.0f} s)")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
