"""Held-out DISC21-style copy detection: hashes, ImageNet GeM, the shipped encoder, the copy-trained tower,
multi-scale regions and geometric verification, in one run.

    .venv/bin/python benchmarks/bench_copy.py [--weights encoder/checkpoints/copy_tower/tower.safetensors]
                                              [--threads 2] [--verify-top 3] [--out results.json]
                                              [--checkpoint DIR ...]  # a candidate compact checkpoint's row

The set (training/copy_benchmark.py): 500 references (scikit-image photos + held-out grocery products + clothing
test/), 1,000 queries = 700 edited copies over 16 families + 300 edited distractors; rendered once into a temp
folder. Metrics (training/metrics.py, ISC 2021): µAP over all (query, top-10 reference) predictions with the
distractors, recall at precision 0.9, recall@1; per family, the same over that family's copies + distractors.
img/s = descriptor throughput of the image path (decode excluded) at --threads torch threads on this machine.
Points = vectors stored per image. "+ score normalisation" subtracts each query's highest cosine to --background
clean training photos (SSCD). "+ verification" re-scores each query's top --verify-top references with
app/geometric_verification.py (score += inlier score).
"""

from __future__ import annotations

import argparse
import hashlib
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
from training.copy_data import load_photos, training_photos  # noqa: E402
from training.copy_eval import (background_normalised, hash_bits, load_images, region_boxes,  # noqa: E402
                                region_similarity, shipped_image_vectors, tower_descriptors)
from training.metrics import copy_detection_metrics  # noqa: E402


def _hamming_sim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float32), b.astype(np.float32)
    return -(a @ (1 - b).T + (1 - a) @ b.T)  # (Q, R)


def _cached(folder: Path, key: str, fn):
    """fn() -> (dict of arrays, img/s), stored as folder/desc_<key>.npz so a re-run skips the slow towers."""
    file = folder / f"desc_{key}.npz"
    if file.is_file():
        with np.load(file) as z:
            return {k: z[k] for k in z.files if k != "_speed"}, float(z["_speed"])
    arrays, speed = fn()
    np.savez(file.with_suffix(".tmp.npz"), _speed=np.float64(speed), **arrays)
    file.with_suffix(".tmp.npz").replace(file)
    return arrays, speed


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


def _report(rows, truth: np.ndarray, families: np.ndarray, t_start: float, out: Path | None) -> None:
    """Print the overall and per-family tables; write them as JSON to `out` when given."""
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
    if out:
        out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=ROOT / "encoder" / "checkpoints" / "copy_tower" / "tower.safetensors")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--verify-top", type=int, default=3)
    parser.add_argument("--background", type=int, default=600, help="training photos in the normalisation set")
    parser.add_argument("--baselines-only", action="store_true", help="only the hash / ImageNet / shipped rows")
    parser.add_argument("--checkpoint", type=Path, action="append", default=[],
                        help="a compact checkpoint to add as a row (its image vector); repeatable")
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

    cache = bench.refs[0].parents[1]

    def hashes():
        hq, speed = hash_bits(queries)
        hr, _ = hash_bits(refs)
        return {"q_phash": hq["phash"], "r_phash": hr["phash"], "q_pdq": hq["pdq"], "r_pdq": hr["pdq"],
                "pdq_speed": np.float64(speed["pdq"])}, speed["phash"]

    h, sp_ph = _cached(cache, "hashes", hashes)
    rows.append(("pHash (64 bit)", _hamming_sim(h["q_phash"], h["r_phash"]), sp_ph, 1))
    rows.append(("PDQ (256 bit)", _hamming_sim(h["q_pdq"], h["r_pdq"]), float(h["pdq_speed"]), 1))
    print("hashes done", flush=True)

    all_boxes = region_boxes(["centre", "2x2", "3x3"])  # whole, centre, 4 quarters, 9 cells = 15
    subsets = {"whole": [0], "+ centre": [0, 1], "+ centre + 2x2": list(range(6)), "+ centre + 2x2 + 3x3": list(range(15))}

    def tower_run(tower, whiten):
        def run():
            q, speed = tower_descriptors(tower, queries, all_boxes, whiten=whiten)
            r, _ = tower_descriptors(tower, refs, all_boxes, whiten=whiten)
            return {"q": q, "r": r}, speed
        return run

    d, sp_in = _cached(cache, f"imagenet_{args.image_size}", tower_run(ImageTower("efficientnet-lite0", args.image_size), True))
    q_in, r_in = d["q"], d["r"]
    rows.append(("ImageNet Lite0 GeM (whole)", region_similarity(q_in[:, :1], r_in[:, :1]), sp_in, 1))
    rows.append(("ImageNet Lite0 GeM + centre + 2x2 + 3x3", region_similarity(q_in, r_in), sp_in, 15))
    print("imagenet done", flush=True)

    def shipped():
        q, speed = shipped_image_vectors(queries)
        r, _ = shipped_image_vectors(refs)
        return {"q": q, "r": r}, speed

    d, sp_sh = _cached(cache, "shipped", shipped)
    rows.append(("shipped encoder image vector (compact)", d["q"] @ d["r"].T, sp_sh, 1))
    for folder in args.checkpoint:
        from encoder.checkpoint import load_checkpoint

        version = load_checkpoint(folder).model_version

        def candidate(folder=folder):
            q, speed = shipped_image_vectors(queries, checkpoint=folder)
            r, _ = shipped_image_vectors(refs, checkpoint=folder)
            return {"q": q, "r": r}, speed

        d, sp = _cached(cache, f"checkpoint_{version}", candidate)
        rows.append((f"checkpoint {version} image vector ({folder.name})", d["q"] @ d["r"].T, sp, 1))
    print("shipped done", flush=True)
    if args.baselines_only:
        return _report(rows, truth, families, t_start, args.out)

    copy = ImageTower("efficientnet-lite0-copy", args.image_size, weights_path=str(args.weights))
    digest = hashlib.sha256(args.weights.read_bytes()).hexdigest()[:12]
    d, sp_cp = _cached(cache, f"copy_{digest}_{args.image_size}", tower_run(copy, False))
    q_raw, r_raw = d["q"], d["r"]
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

    # background set for score normalisation: clean training photos (never benchmark photos), seeded choice
    def background():
        bg, speed = tower_descriptors(copy, load_photos(training_photos(max_photos=args.background, seed=7)),
                                      all_boxes[:1], whiten=False)
        return {"bg": bg}, speed

    d, _ = _cached(cache, f"bg_{digest}_{args.image_size}_{args.background}", background)
    bg_cp = w(torch.from_numpy(d["bg"])).numpy()[:, 0]
    glob_sim = region_similarity(q_cp[:, :1], r_cp[:, :1])
    rows.append((f"copy tower (whole) + score normalisation ({args.background} bg)",
                 background_normalised(glob_sim, q_cp[:, 0], bg_cp), sp_cp, 1))
    if best_name != "whole":
        rows.append((f"copy tower {best_name} + score normalisation",
                     background_normalised(best_sim, q_cp[:, 0], bg_cp), sp_cp, len(subsets[best_name])))
    print("normalisation done", flush=True)

    if args.verify_top > 0:
        global_sim = region_similarity(q_cp[:, :1], r_cp[:, :1])
        v_sim, v_speed = _verify_rescore(global_sim, queries, refs, args.verify_top)
        rows.append((f"copy tower (whole) + verification of top {args.verify_top}", v_sim, v_speed, 1))
        if best_name != "whole":
            v_sim2, _ = _verify_rescore(best_sim, queries, refs, args.verify_top)
            rows.append((f"copy tower {best_name} + verification of top {args.verify_top}", v_sim2, v_speed,
                         len(subsets[best_name])))
        print("verification done", flush=True)

    _report(rows, truth, families, t_start, args.out)

if __name__ == "__main__":
    main()
