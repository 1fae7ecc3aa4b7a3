"""Stage-1 quality on the held-out split: trained vs untrained vs pHash / PDQ / MinHash, measured in one run.

    .venv/bin/python benchmarks/bench_quality.py [--checkpoint encoder/checkpoints/compact]
                                                 [--config training/configs/sft_compact.toml]

Prints three markdown tables (training/evaluation.py): copy detection (µAP over all query–reference pairs with
distractor queries, recall@P90, recall@1) per method and Matryoshka dim; R@1 / P@5 per task family; and the share
of the full-dim R@1 each Matryoshka dim keeps. Tower features come from the cache (~/.cache/uninote/features);
a cold cache runs the towers on ~2,300 held-out views first (minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from training.evaluation import evaluate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "encoder" / "checkpoints" / "compact")
    parser.add_argument("--config", type=Path, default=ROOT / "training" / "configs" / "sft_compact.toml")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    evaluate(args.checkpoint, config_path=args.config, progress=True)
    print(f"(evaluated in {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
