"""Search latency: coarse-to-fine (prefetch with the Matryoshka prefix, re-score at the full dim) vs the full
dim alone, on a few thousand stored notes. Run by hand:

    .venv/bin/python benchmarks/bench_search.py [--notes 3000] [--queries 200] [--qdrant-url URL]

Prints p50/p95 latency (ms) per mode, the ratio to the full-dim baseline measured in the same run, and
Recall@10 of each mode against exact full-dim search. Vectors: L2-normalised 512-d Gaussian clusters
(notes of one topic share a centre; D = 512, prefix 64 as in the compact encoder). Embedded local mode
(the default) is exact brute force in numpy; with --qdrant-url the server's HNSW is measured instead.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch

from app.settings import Settings
from qdrant_client import QdrantClient

from app.store import QdrantStore, StoreConfig
from encoder.types import ElementKind, EncodedNote, LocalVector

DIMS = (64, 128, 256, 512)


def clustered(rng: np.random.Generator, n: int, centres: np.ndarray, spread: float) -> np.ndarray:
    """(n, D) float32 unit vectors around random centres."""
    v = centres[rng.integers(0, len(centres), n)] + spread * rng.standard_normal((n, centres.shape[1]))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v.astype(np.float32)


def fill(store: QdrantStore, g: np.ndarray, locals_: np.ndarray) -> None:
    """One note per row of g with 3 local elements each (an image, a crop, a title)."""
    kinds = (ElementKind.IMAGE, ElementKind.CROP, ElementKind.TITLE)
    for i in range(len(g)):
        elements = [LocalVector(k, 0, locals_[3 * i + j], image_index=0 if j < 2 else None)
                    for j, k in enumerate(kinds)]
        store.upsert_note(EncodedNote(f"n{i}", g[i], elements, "bench"), [], {"title": f"note {i}"})


def timed(fn, queries: np.ndarray) -> tuple[np.ndarray, list]:
    fn(queries[0])  # warm-up
    out, times = [], []
    for q in queries:
        t0 = time.perf_counter()
        out.append(fn(q))
        times.append((time.perf_counter() - t0) * 1000.0)
    return np.array(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=3000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--qdrant-url", default=None, help="measure a Qdrant server instead of local mode")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((max(args.notes // 20, 1), DIMS[-1]))  # (C, D)
    g = clustered(rng, args.notes, centres, 0.08)  # (N, D)
    locals_ = clustered(rng, 3 * args.notes, centres, 0.08)  # (3N, D)
    queries = clustered(rng, args.queries, centres, 0.08)  # (Q, D)

    settings = Settings(qdrant_url=args.qdrant_url)
    if args.qdrant_url:
        client = QdrantStore.from_settings(settings).client
    else:  # in-memory local mode: the on-disk one commits every point to SQLite (slow to fill)
        client = QdrantClient(location=":memory:")
    config = StoreConfig.from_settings(settings)
    store = QdrantStore(client, config, is_local=not args.qdrant_url)
    if store.active_version() != "bench":
        store.ensure_collections("bench", DIMS)
    if store.count_notes() < args.notes:
        t0 = time.perf_counter()
        fill(store, g, locals_)
        print(f"indexed {args.notes} notes ({3 * args.notes} elements) in {time.perf_counter() - t0:.1f} s")

    t_full, r_full = timed(lambda q: store.search_global(q, 10, use_prefetch=False), queries)
    rows = [("global_512 (full dim, baseline)", t_full, r_full)]
    exact = [[h.note_id for h in r] for r in r_full]
    for limit in (1000, 200):
        staged = QdrantStore(client, replace(config, prefetch_limit=limit), is_local=store.is_local)
        t_pre, r_pre = timed(lambda q: staged.search_global(q, 10, use_prefetch=True), queries)
        rows.append((f"prefetch global_64 -> global_512 (prefetch {limit})", t_pre, r_pre))
    for use_prefetch in (False, True):
        t_el, _ = timed(lambda q: store.search_elements(np.stack([q, q, q]), 10, use_prefetch=use_prefetch), queries)
        route = f"prefetch local_64 -> local_512 (prefetch {config.prefetch_limit})" if use_prefetch else "local_512"
        rows.append((f"elements, batch of 3, {route}", t_el, None))
    client.close()

    base = np.median(rows[0][1])
    print(f"\n{args.notes} notes, {args.queries} queries, {'server ' + args.qdrant_url if args.qdrant_url else 'local mode'}")
    print(f"{'mode':72s} {'p50 ms':>8s} {'p95 ms':>8s} {'p50 / baseline':>15s} {'Recall@10':>10s}")
    for name, times, results in rows:
        recall = ""
        if results is not None:
            got = [[h.note_id for h in r] for r in results]
            recall = f"{np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(got, exact)]):.3f}"
        print(f"{name:72s} {np.median(times):8.2f} {np.percentile(times, 95):8.2f} "
              f"{np.median(times) / base:15.2f} {recall:>10s}")


if __name__ == "__main__":
    main()
