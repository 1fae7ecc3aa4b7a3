"""CPU time per store call of `check` on a library bench_scale built and kept. Run by hand:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_check_cpu.py DIR/edge-hnsw_10000 10000 [--engine
        edge-hnsw|edge-exact] [--queries 40] [--cprofile search_elements]

Runs bench_scale's 40 queries (the same perturbed real notes) through `app.audit.check` on the stored library
and prints the p50 over checks of this process's CPU milliseconds (time.process_time: the engine's threads
included) in each store call (search_global, search_elements, search_pdq, note_vectors) and their total;
--cprofile CALL adds cProfile's top functions inside that call. Comparing two versions of the code: run
each on a library it built, alternating, on the same machine (CPU time is what a shared machine's load
inflates least). Needs bench_scale's encoded real notes (its --cache, default /tmp/uninote_bench_scale).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_scale  # noqa: E402
from app.audit import AuditConfig, check  # noqa: E402


class CpuTimed:
    """The store, with the CPU seconds of each of its calls added up by name in `.cpu`."""

    def __init__(self, store, profile_call: str | None = None):
        self.store, self.cpu, self.profile_call, self.profile = store, {}, profile_call, cProfile.Profile()

    def __getattr__(self, name):
        attr = getattr(self.store, name)
        if not callable(attr):
            return attr

        def timed(*a, **k):
            c0 = time.process_time()
            if name == self.profile_call:
                self.profile.enable()
            try:
                return attr(*a, **k)
            finally:
                if name == self.profile_call:
                    self.profile.disable()
                self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - c0
        return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("library", type=Path, help="a library folder bench_scale --keep left")
    parser.add_argument("n", type=int, help="its number of notes (the N it was built with)")
    parser.add_argument("--engine", default="edge-hnsw", choices=["edge-hnsw", "edge-exact"])
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--real", type=int, default=200)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "uninote_bench_scale")
    parser.add_argument("--cprofile", default=None, help="profile this store call (e.g. note_vectors)")
    args = parser.parse_args()
    real_file = args.cache / f"real_{args.real}.npz"
    if not real_file.exists() or not args.library.is_dir():
        sys.exit(f"need {real_file} and {args.library}: run bench_scale.py --workdir DIR --keep first")
    lib = bench_scale.Library(dict(np.load(real_file)), args.n)
    queries = [lib.note(int(j), spread=0.15, note_id=f"q{i}")
               for i, j in enumerate(np.random.default_rng(7).integers(0, args.n, args.queries))]
    store = bench_scale.open_engine(args.engine, args.library)
    timed, config = CpuTimed(store, args.cprofile), AuditConfig()
    check(queries[0][0], queries[0][1], timed, config)  # warm-up
    rows = []
    for enc, pdq in queries:
        timed.cpu = {}
        check(enc, pdq, timed, config)
        rows.append(dict(timed.cpu))
    store.close()
    names = sorted({k for r in rows for k in r if k != "active_version"})
    total = np.median([sum(r.values()) * 1e3 for r in rows])
    print(f"{args.engine} N={args.n}: CPU ms p50 total {total:.1f} · "
          + " · ".join(f"{k} {np.median([r.get(k, 0.0) * 1e3 for r in rows]):.1f}" for k in names))
    if args.cprofile:
        out = io.StringIO()
        pstats.Stats(timed.profile, stream=out).sort_stats("tottime").print_stats(12)
        print(out.getvalue())


if __name__ == "__main__":
    main()
