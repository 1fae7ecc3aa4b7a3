"""Stage 2 (GRPO) numbers, run by hand: does ranking alignment help, and what does it cost copy detection?

    .venv/bin/python benchmarks/bench_grpo.py [--init encoder/checkpoints/compact] \
        [--config training/configs/grpo_compact.toml] [--out ~/.cache/uninote/grpo_run] [--steps N]

Runs `train_rl` from the stage-1 checkpoint, then prints, in one run:
1. held-out note-to-note P@5 / NDCG@10 / Recall@10 before and after RL, at every Matryoshka dim;
2. copy-detection µAP and recall at 90% precision before and after (the ISC 2021 / DISC21 micro-AP:
   one precision-recall curve over the top-10 pairs of every query, distractor queries included):
   queries are AugLy-style edits (training/edits.py) of held-out photos plus edits of training photos
   that have no reference (distractors); references are the held-out photos; image vectors are the
   whole-image IMAGE vectors;
3. the reward curve (mean per-candidate reward, KL to the stage-1 model, in-group NDCG@10).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from encoder.checkpoint import load_checkpoint  # noqa: E402
from encoder.images import load_image  # noqa: E402
from training.edits import random_edit  # noqa: E402
from training.grpo_config import GRPOConfig  # noqa: E402
from training.grpo_data import DEFAULT_CACHE_DIR, grocery_notes  # noqa: E402
from training.grpo_train import train_rl  # noqa: E402
from training.metrics import copy_detection_metrics  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def copy_set(seed: int, n_queries: int, n_distractors: int, cache: Path):
    """(reference features (R, 1280), query features (Q, 1280), truth (Q,)), towers run once and cached."""
    path = cache / f"copyset-{seed}-{n_queries}-{n_distractors}.pt"
    if path.is_file():
        d = torch.load(path, weights_only=True)
        return d["refs"], d["queries"], d["truth"]
    from encoder.compact import CompactUniNote

    towers = CompactUniNote()
    rng = np.random.default_rng(seed)
    held = sorted(grocery_notes(held_out=True, seed=seed).image_paths.values())
    train = sorted(grocery_notes(held_out=False, seed=seed).image_paths.values())
    refs_img = [load_image(p) for p in held]
    src = rng.choice(len(held), size=n_queries, replace=False)
    queries = [random_edit(refs_img[i], rng)[1] for i in src]
    queries += [random_edit(load_image(train[i]), rng)[1] for i in rng.choice(len(train), n_distractors, replace=False)]
    truth = np.concatenate([src, -np.ones(n_distractors, dtype=np.int64)])

    def feats(images):
        return torch.cat([towers.region_features(images[s : s + 16])[:, 0] for s in range(0, len(images), 16)])

    out = {"refs": feats(refs_img), "queries": feats(queries), "truth": torch.from_numpy(truth)}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, path)
    return out["refs"], out["queries"], out["truth"]


@torch.no_grad()
def copy_metrics(model, refs, queries, truth) -> dict[int, tuple[float, float]]:
    """dim -> (µAP, recall@P90) of the model's IMAGE vectors (training.metrics, the sscd / ISC 2021 metric)."""
    r, q = model.embed_regions(refs), model.embed_regions(queries)  # (R, D), (Q, D)
    is_copy = truth.numpy()[:, None] == np.arange(len(refs))[None, :]  # (Q, R) bool; distractor rows all False
    out = {}
    for d in model.config.dims:
        rd = torch.nn.functional.normalize(r[:, :d], dim=-1)  # (R, d)
        qd = torch.nn.functional.normalize(q[:, :d], dim=-1)  # (Q, d)
        m = copy_detection_metrics((qd @ rd.T).numpy(), is_copy, top_k=10)
        out[d] = (m.micro_ap, m.recall_at_p90)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--init", type=Path, default=REPO / "encoder" / "checkpoints" / "compact")
    ap.add_argument("--config", type=Path, default=REPO / "training" / "configs" / "grpo_compact.toml")
    ap.add_argument("--out", type=Path, default=DEFAULT_CACHE_DIR / "run")
    ap.add_argument("--steps", type=int, default=0, help="override the config's steps (0 = keep)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--queries", type=int, default=120, help="copy queries with a reference")
    ap.add_argument("--distractors", type=int, default=40, help="copy queries without a reference")
    ap.add_argument("--fresh", action="store_true", help="ignore a trainer state left in --out")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    cfg = GRPOConfig.from_toml(args.config)
    if args.steps:
        cfg = GRPOConfig.from_dict(cfg.to_dict() | {"steps": args.steps})
    t0 = time.perf_counter()
    result = train_rl(args.init, None, args.out, config=cfg, resume=not args.fresh)
    train_s = time.perf_counter() - t0

    refs, queries, truth = copy_set(cfg.seed, args.queries, args.distractors, DEFAULT_CACHE_DIR)
    before = copy_metrics(load_checkpoint(args.init), refs, queries, truth)
    after = copy_metrics(load_checkpoint(args.out), refs, queries, truth)

    print(f"\nstage 2 (GRPO) from {args.init} -> {args.out} (version {result.model_version}); "
          f"{cfg.steps} steps, {train_s:.0f} s incl. feature extraction; the stage-1 model retrieved "
          f"{result.retrieved_targets:.1%} of the graded targets in its top G={cfg.group_size}")
    print("\nheld-out note-to-note ranking "
          f"({result.before[0].n_queries} queries, library {result.before[0].library_size})")
    print(f"{'dim':>5} | {'P@5 before':>10} {'after':>7} | {'NDCG@10 before':>14} {'after':>7} | "
          f"{'R@10 before':>11} {'after':>7} | {'top1 before':>11} {'after':>7}")
    for b, a in zip(result.before, result.after):
        print(f"{b.dim:>5} | {b.p_at_5:>10.3f} {a.p_at_5:>7.3f} | {b.ndcg_at_10:>14.3f} {a.ndcg_at_10:>7.3f} | "
              f"{b.recall_at_10:>11.3f} {a.recall_at_10:>7.3f} | {b.top1_best:>11.3f} {a.top1_best:>7.3f}")
    print(f"\ncopy detection ({int((truth >= 0).sum())} queries + {int((truth < 0).sum())} distractors, "
          f"{len(refs)} references)")
    print(f"{'dim':>5} | {'µAP before':>10} {'after':>7} {'Δ':>7} | {'R@P90 before':>12} {'after':>7}")
    for d in before:
        (ab, rb), (aa, ra) = before[d], after[d]
        print(f"{d:>5} | {ab:>10.3f} {aa:>7.3f} {aa - ab:>+7.3f} | {rb:>12.3f} {ra:>7.3f}")
    print("\nreward curve (full dim; the logged step, averaged over its micro-batches)")
    print(f"{'step':>5} | {'reward':>7} | {'KL':>7} | {'NDCG@10':>7}")
    for s, r, k, n in result.reward_curve:
        print(f"{s:>5} | {r:>7.3f} | {k:>7.4f} | {n:>7.3f}")


if __name__ == "__main__":
    main()
