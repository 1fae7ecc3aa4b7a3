"""The geometric verification step alone, as a check with the defaults runs it: 3 edited query photos (training/edits.py)
against 3 candidate notes x 2 image pairs (clothing test + grocery val photos from ../shared/data, decoded from their
files), a fresh ImageSource per round (features are not reused across checks in the product).

    .venv/bin/python benchmarks/bench_verify.py [--rounds 6]
    PYTHONPATH=<a checkout of REV> .venv/bin/python benchmarks/bench_verify.py   # the code of REV (before)

Prints one JSON line: median wall and CPU ms per round (the first round is a warm-up), and each pair's inliers and
whether the mirrored query won. Code before the worker pool (no ImageSource.load) runs the pairs one by one.
The machine may be shared: alternate before/after runs and compare in one session.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.append(str(REPO))  # training.edits; app.* comes first from PYTHONPATH when set
DATA = REPO / ".." / "shared" / "data"
PAIRS = [(q, note, m) for note in range(3) for (q, m) in ((0, 0), (1, 1))]  # (query image, note, its image)


def main() -> None:
    import app.match_verification as mv
    from app.audit import AuditConfig
    from training.edits import random_edit

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6)
    args = ap.parse_args()
    clothing = sorted((DATA / "clothing" / "test").rglob("*.jpg"))
    grocery = sorted((DATA / "grocery" / "dataset" / "val" / "Packages").rglob("*.jpg"))
    if not clothing or not grocery:
        raise SystemExit(f"real photos not found under {DATA.resolve()}")
    notes = [[str(clothing[3 * i % len(clothing)]), str(grocery[5 * i % len(grocery)]),
              str(clothing[(3 * i + 7) % len(clothing)])] for i in range(3)]
    query = [random_edit(Image.open(p).convert("RGB"), np.random.default_rng(k))[1].convert("RGB")
             for k, p in enumerate(notes[0])]  # note 0 is the original
    config = AuditConfig()
    walls, cpus, results = [], [], []
    for r in range(args.rounds + 1):
        src = mv.ImageSource(query, lambda note_id, payload: notes[int(note_id)])
        t, c = time.perf_counter(), time.process_time()
        if hasattr(src, "load"):  # this change: the worker pool
            src.load([0, 1], [(str(n), {}, m) for _, n, m in PAIRS])
            for qi in (0, 1):
                src.query_features(qi, mirrored=True)
            jobs = [(q, src.candidate_features(str(n), {}, m)) for q, n, m in PAIRS]
            results = list(mv.worker_pool().map(lambda j: mv.verify_pair(src, j[0], j[1], config), jobs))
        else:
            results = [mv.verify_pair(src, q, src.candidate_features(str(n), {}, m), config) for q, n, m in PAIRS]
        if r:
            walls.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
    print(json.dumps({"wall_ms": float(np.median(walls)) * 1e3, "cpu_ms": float(np.median(cpus)) * 1e3,
                      "inliers": [v.inliers for v in results], "mirrored": [v.mirrored for v in results]}))


if __name__ == "__main__":
    main()
