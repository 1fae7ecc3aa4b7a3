"""Store engines at library scale: the search part of `check` on 1k / 10k / 100k notes. Run by hand:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_scale.py [--sizes 1000,10000] [--real 200]
        [--queries 40] [--engines edge-hnsw,edge-exact,local,numpy] [--local-max 1000] [--exact-max 10000]
        [--workdir DIR --keep]   # keep the built libraries and reuse them (100k: build once)

A few hundred real notes (3 grocery photos of one product each, its title and description; ../shared/data)
are encoded once with the shipped encoder (OCR off; cached in --cache), the rest of each library is
synthesised by perturbing real vectors (same element kinds and counts per note; PDQ hashes with 25-60 bits
flipped) and written through the store API. Queries are real notes perturbed a little (an edited copy).

Per N and engine, each in a fresh process (RSS is that process's own):
- search p50/p95 ms: the store calls of `app.audit.check` on an encoded note (global, element and PDQ
  searches, the candidates' vector fetch); check p50: the whole `app.audit.check` (+ its Python re-scoring);
  numpy: the global and element searches and the candidates' look-up in RAM; split into the global,
  element and PDQ searches and the vector fetch (`note_vectors`), p50 of each; search CPU p50: the CPU
  seconds of this process (the engine's threads included) in those calls, what a shared machine's load
  does not inflate;
- recall@10: of the global and the element searches, against exact search (numpy on the same vectors,
  streamed over the library);
- RSS MB after opening the store and running the checks (minus the process before; "of it heap": RssAnon,
  the rest is memory-mapped store files the kernel can drop), disk bytes per note (allocated blocks), open
  time, ingest notes/s (upserts, plus Edge's HNSW build, reported apart: the bench builds it once, after
  the last upsert).
Engines: `edge-hnsw` (the embedded default), `edge-exact` (Edge, brute force), `local` (qdrant-client's local
mode, only up to --local-max notes: it is minutes per check beyond), `numpy` (brute force in numpy over
arrays in RAM: the floor for exact search).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.audit import AuditConfig, check  # noqa: E402
from app.image_hashes import PdqHash  # noqa: E402
from encoder.types import ElementKind, EncodedNote, LocalVector  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "grocery"
VERSION = "bench"


# ---- real notes, encoded once ---------------------------------------------------------------------------
def encode_real(n: int, cache: Path) -> Path:
    """Encode `n` real 3-photo notes (cached as .npz). Returns the cache file."""
    out = cache / f"real_{n}.npz"
    if out.exists():
        return out
    if not DATA.is_dir():
        sys.exit(f"no real data at {DATA}: the benchmark needs ../shared/data/grocery")
    import torch

    from app.notes import Note
    from app.preparation import prepare_note
    from app.settings import Settings
    from encoder.loading import load_encoder

    torch.set_num_threads(1)
    products = {row["class_id"]: row for row in csv.DictReader(open(DATA / "products.csv", encoding="utf-8"))}
    by_class: dict[str, list[Path]] = {}
    for line in open(DATA / "dataset" / "train.txt", encoding="utf-8"):
        path, fine, _ = [x.strip() for x in line.split(",")]
        by_class.setdefault(fine, []).append(DATA / "dataset" / path)
    groups = [(c, paths[i:i + 3]) for c, paths in by_class.items() for i in range(0, len(paths) - 2, 3)]
    rng = np.random.default_rng(0)
    groups = [groups[i] for i in rng.permutation(len(groups))[:n]]
    encoder = load_encoder(Settings(ocr_enabled=False))
    globals_, elements, kinds, indexes, owners, pdq_bits, pdq_quality = [], [], [], [], [], [], []
    t0 = time.perf_counter()
    for i, (c, paths) in enumerate(groups):
        p = products[c]
        note = Note(note_id=f"r{i}", title=(p["product_title"] or p["class_name"])[:200],
                    body=p["product_description"], images=paths)
        prepared = prepare_note(note, ocr_enabled=False)
        enc = encoder.encode([prepared.inputs])[0]
        globals_.append(enc.global_vector)
        for e in enc.locals:
            elements.append(e.vector)
            kinds.append(ElementKind(e.kind).value)
            indexes.append((e.index, -1 if e.image_index is None else e.image_index))
            owners.append(i)
        for h in prepared.pdq:
            pdq_bits.append(h.bits)
            pdq_quality.append(h.quality)
    print(f"encoded {len(groups)} real notes in {time.perf_counter() - t0:.0f} s "
          f"({len(elements) / len(groups):.1f} elements per note)", file=sys.stderr)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(out, globals=np.stack(globals_), elements=np.stack(elements), kinds=np.array(kinds),
             indexes=np.array(indexes), owners=np.array(owners), pdq=np.stack(pdq_bits).astype(np.uint8),
             pdq_quality=np.array(pdq_quality), dims=np.array(encoder.dims))
    return out


# ---- a synthetic library from the real vectors ----------------------------------------------------------
class Library:
    """N notes: note j is real note j % R perturbed (j >= R), with the same elements and image count."""

    def __init__(self, real: dict, n: int, seed: int = 0, spread: float = 0.35):
        self.real, self.n, self.spread = real, n, spread
        self.R = len(real["globals"])
        self.dims = tuple(int(d) for d in real["dims"])
        self.by_owner = [np.flatnonzero(real["owners"] == r) for r in range(self.R)]
        images = [int(sum(1 for k in real["kinds"][idx] if k == "image")) for idx in self.by_owner]
        self.pdq_start = np.concatenate([[0], np.cumsum(images)[:-1]]).astype(int)  # (R,) first hash of note r
        self.seed = seed

    def note(self, j: int, spread: float | None = None, note_id: str | None = None) -> tuple[EncodedNote, list]:
        r = j % self.R
        rng = np.random.default_rng(self.seed * 1_000_003 + j)
        s = (0.0 if j < self.R else self.spread) if spread is None else spread

        def jitter(v: np.ndarray) -> np.ndarray:  # (D,) -> (D,) unit
            w = v + s * rng.standard_normal(v.shape).astype(np.float32) / np.sqrt(v.shape[0])
            return (w / np.linalg.norm(w)).astype(np.float32)
        locals_ = []
        for e in self.by_owner[r]:
            index, image_index = (int(x) for x in self.real["indexes"][e])
            locals_.append(LocalVector(ElementKind(str(self.real["kinds"][e])), index, jitter(self.real["elements"][e]),
                                       image_index=None if image_index < 0 else image_index))
        n_images = sum(1 for e in locals_ if e.kind == ElementKind.IMAGE)
        pdq = []
        for k in range(n_images):
            bits = self.real["pdq"][self.pdq_start[r] + k].copy()  # (256,) uint8 0/1
            if s > 0:  # another photo of the same product: a different hash
                bits[rng.choice(bits.shape[0], int(rng.integers(25, 61)), replace=False)] ^= 1
            pdq.append(PdqHash(bits, int(self.real["pdq_quality"][self.pdq_start[r] + k])))
        return EncodedNote(note_id or f"n{j}", jitter(self.real["globals"][r]), locals_, VERSION), pdq


def open_engine(engine: str, path: Path, bulk: bool = False, search: dict | None = None):
    """The store of `engine` at `path`; bulk: Edge builds its HNSW index once, when the bench asks
    (`optimize` after the last upsert), as a backfill would, instead of every StoreConfig.optimize_points.
    search: StoreConfig fields of the search (hnsw_ef, element_prefetch_limit) other than the defaults."""
    from app.store import EdgeStore, QdrantStore, StoreConfig

    if engine == "local":
        return QdrantStore.open_local(path, StoreConfig(prefetch=False))
    config = StoreConfig(exact=engine == "edge-exact", prefetch=True, **(search or {}))
    return EdgeStore(path, replace(config, optimize_points=10**12) if bulk else config)


class Timed:
    """The store, with the seconds spent in its calls (the search part of a check) added up in `.spent`."""

    def __init__(self, store):
        self.store, self.spent, self.cpu, self.by_call = store, 0.0, 0.0, {}

    def __getattr__(self, name):
        attr = getattr(self.store, name)
        if not callable(attr):
            return attr

        def timed(*a, **k):
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                return attr(*a, **k)
            finally:
                self.spent += time.perf_counter() - t0
                self.cpu += time.process_time() - c0
                self.by_call[name] = self.by_call.get(name, 0.0) + time.perf_counter() - t0
        return timed


def rss_mb(field: str = "VmRSS") -> float:
    """This process's resident memory (VmRSS; RssAnon = its own heap, RssFile = mapped file pages), MB."""
    for line in open("/proc/self/status"):
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file())


class NumpyIndex:
    """Exact search over arrays in RAM (the floor), with the store's search methods used by audit.check."""

    def __init__(self, lib: Library):
        self.dim = lib.dims[-1]
        notes = [lib.note(j) for j in range(lib.n)]
        self.ids = [n.note_id for n, _ in notes]
        self.g = np.stack([n.global_vector for n, _ in notes])  # (N, D)
        self.e = np.stack([e.vector for n, _ in notes for e in n.locals])  # (M, D)
        self.e_owner = np.array([j for j, (n, _) in enumerate(notes) for _ in n.locals])  # (M,)
        self.e_keys = [(n.note_id, ElementKind(e.kind).value, e.index) for n, _ in notes for e in n.locals]
        self.notes = {n.note_id: n for n, _ in notes}

    def global_top(self, q: np.ndarray, k: int, exclude: str | None = None) -> list[str]:
        s = self.g @ q  # (N,)
        order = np.argsort(-s)
        return [self.ids[i] for i in order if self.ids[i] != exclude][:k]

    def element_top(self, Q: np.ndarray, k: int) -> list[list[tuple[str, str, int]]]:
        """Per query row, the keys (note id, kind, index) of the k nearest stored elements, best first."""
        s = Q @ self.e.T  # (Q, M)
        top = np.argpartition(-s, k, axis=1)[:, :k]  # (Q, k)
        return [[self.e_keys[i] for i in idx[np.argsort(-row[idx])]] for row, idx in zip(s, top)]


def exact_truth(lib: Library, queries: list, k: int = 10, chunk: int = 2000) -> tuple[list, list]:
    """Exact top-k of each query's global vector and of each of its elements over the whole library,
    streamed `chunk` notes at a time (100k notes are 4 GB of element vectors: never all in RAM).

    Returns (per query: [(score, note id)] best first, per query: per element [(score, key)] best first),
    key = (note id, kind, index)."""
    qg = np.stack([enc.global_vector for enc, _ in queries])  # (Qn, D)
    qe_rows = [np.stack([e.vector for e in enc.locals]) for enc, _ in queries]
    qe_all = np.concatenate(qe_rows)  # (sum Q, D)
    g_best: list[list] = [[] for _ in queries]
    e_best: list[list] = [[] for _ in range(len(qe_all))]
    for start in range(0, lib.n, chunk):
        notes = [lib.note(j)[0] for j in range(start, min(lib.n, start + chunk))]
        g = np.stack([n.global_vector for n in notes])  # (c, D)
        keys = [(n.note_id, ElementKind(e.kind).value, e.index) for n in notes for e in n.locals]
        e = np.stack([e.vector for n in notes for e in n.locals])  # (m, D)
        for rows, best, ids in ((qg @ g.T, g_best, [n.note_id for n in notes]), (qe_all @ e.T, e_best, keys)):
            top = np.argpartition(-rows, k, axis=1)[:, :k]  # (rows, k)
            for i, idx in enumerate(top):
                best[i] = sorted(best[i] + [(float(rows[i, t]), ids[t]) for t in idx], key=lambda x: -x[0])[:k]
    per_query, at = [], 0
    for rows in qe_rows:
        per_query.append(e_best[at:at + len(rows)])
        at += len(rows)
    return g_best, per_query


# ---- one engine, one size, one process ------------------------------------------------------------------
def run_one(args: argparse.Namespace) -> dict:
    real = dict(np.load(args.real_file))
    lib = Library(real, args.n)
    queries = [lib.note(int(j), spread=0.15, note_id=f"q{i}") for i, j in
               enumerate(np.random.default_rng(7).integers(0, args.n, args.queries))]
    config = AuditConfig()
    out: dict = {"engine": args.engine, "n": args.n}
    if args.engine == "numpy":
        t0 = time.perf_counter()
        base = rss_mb()
        index = NumpyIndex(lib)
        out["open_s"] = time.perf_counter() - t0
        out["rss_mb"] = rss_mb() - base
        times = []
        for enc, pdq in queries:  # global + element searches and the candidates' vectors (rows of arrays)
            t0 = time.perf_counter()
            found = set(index.global_top(enc.global_vector, config.global_candidates))
            rows = index.element_top(np.stack([e.vector for e in enc.locals]), config.element_candidates)
            found |= {key[0] for row in rows for key in row}
            _ = [index.notes[nid] for nid in found]
            times.append((time.perf_counter() - t0) * 1000)
        out["p50_ms"], out["p95_ms"] = float(np.median(times)), float(np.percentile(times, 95))
        out["recall_global"] = out["recall_elements"] = 1.0
        return out

    path = Path(args.workdir) / f"{args.engine}_{args.n}"
    meta = path.with_name(path.name + ".json")  # the build's numbers, for --keep reruns
    if args.keep and meta.exists() and path.exists():
        out |= json.loads(meta.read_text())
    else:
        shutil.rmtree(path, ignore_errors=True)
        store = open_engine(args.engine, path, bulk=True)
        store.ensure_collections(VERSION, lib.dims)
        t0 = time.perf_counter()
        for j in range(args.n):
            enc, pdq = lib.note(j)
            store.upsert_note(enc, pdq, {"title": f"note {j}"})
        ingest_s = time.perf_counter() - t0
        out["ingest_notes_s"] = args.n / ingest_s
        if hasattr(store, "optimize"):
            t0 = time.perf_counter()
            store.optimize()
            out["index_build_s"] = time.perf_counter() - t0
        out["elements"] = store.count_elements()
        store.close()
        out["disk_per_note_kb"] = disk_bytes(path) / args.n / 1024
        meta.write_text(json.dumps({k: out[k] for k in ("ingest_notes_s", "index_build_s", "elements",
                                                        "disk_per_note_kb") if k in out}))

    base, base_anon = rss_mb(), rss_mb("RssAnon")
    t0 = time.perf_counter()
    search = {k: v for k, v in (("hnsw_ef", args.hnsw_ef), ("element_prefetch_limit", args.element_prefetch))
              if v is not None}
    store = open_engine(args.engine, path, search=search)
    store.count_notes()
    out["open_s"] = time.perf_counter() - t0
    out["open_rss_mb"] = rss_mb() - base
    timed = Timed(store)
    check(queries[0][0], queries[0][1], timed, config)  # warm-up
    times, search, cpu, parts = [], [], [], {}
    for enc, pdq in queries[:args.local_queries if args.engine == "local" else None]:
        timed.spent, timed.cpu, timed.by_call = 0.0, 0.0, {}
        t0 = time.perf_counter()
        check(enc, pdq, timed, config)
        times.append((time.perf_counter() - t0) * 1000)
        search.append(timed.spent * 1000)
        cpu.append(timed.cpu * 1000)
        for name, spent in timed.by_call.items():
            parts.setdefault(name, []).append(spent * 1000)
    for name, key in (("search_global", "global_ms"), ("search_elements", "elements_ms"), ("search_pdq_batch", "pdq_ms"),
                      ("note_vectors", "fetch_ms")):
        out[key] = float(np.median(parts.get(name, [0.0])))
    out["rss_mb"] = rss_mb() - base
    out["rss_anon_mb"] = rss_mb("RssAnon") - base_anon
    out["p50_ms"], out["p95_ms"] = float(np.median(search)), float(np.percentile(search, 95))
    out["check_p50_ms"] = float(np.median(times))
    out["cpu_p50_ms"] = float(np.median(cpu))

    truth_g, truth_e = exact_truth(lib, queries[:20])
    hit_g = hit_e = total_g = total_e = 0
    for (enc, _), want_g, want_e in zip(queries[:20], truth_g, truth_e):
        want = {nid for _, nid in want_g}
        got = {h.note_id for h in store.search_global(enc.global_vector, 10)}
        hit_g, total_g = hit_g + len(want & got), total_g + len(want)
        Q = np.stack([e.vector for e in enc.locals])  # (E, D)
        for want_row, got_row in zip(want_e, store.search_elements(Q, 10)):
            hit_e += len({key for _, key in want_row} & {(h.note_id, h.kind.value, h.index) for h in got_row})
            total_e += len(want_row)
    out["recall_global"] = hit_g / total_g
    out["recall_elements"] = hit_e / total_e
    store.close()
    if not args.keep:
        shutil.rmtree(path, ignore_errors=True)
        meta.unlink(missing_ok=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--real", type=int, default=200)
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--engines", default="edge-hnsw,edge-exact,local,numpy")
    parser.add_argument("--local-max", type=int, default=1000, help="largest N qdrant-client local mode runs at")
    parser.add_argument("--local-queries", type=int, default=8, help="checks timed on local mode (seconds each)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "uninote_bench_scale")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--exact-max", type=int, default=10000, help="largest N edge-exact and numpy run at "
                        "(each builds its own library; numpy holds every vector in RAM: 4 GB at 100k)")
    parser.add_argument("--hnsw-ef", type=int, default=None, help="HNSW ef at search time (default: the store's)")
    parser.add_argument("--element-prefetch", type=int, default=None,
                        help="candidates of the prefix stage per query element (default: the store's)")
    parser.add_argument("--keep", action="store_true", help="keep each built library in --workdir and reuse it "
                        "when run again (the build's ingest numbers are kept beside it)")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--real-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args)))
        return
    real_file = encode_real(args.real, args.cache)
    workdir = args.workdir or tempfile.mkdtemp(prefix="bench_scale_")
    rows = []
    for n in [int(x) for x in args.sizes.split(",")]:
        for engine in args.engines.split(","):
            if engine == "local" and n > args.local_max:
                rows.append({"engine": engine, "n": n, "skipped": f"N > --local-max {args.local_max}"})
                continue
            if engine in ("edge-exact", "numpy") and n > args.exact_max:
                rows.append({"engine": engine, "n": n, "skipped": f"N > --exact-max {args.exact_max}"})
                continue
            cmd = [sys.executable, __file__, "--one", "--engine", engine, "--n", str(n), "--real-file", str(real_file),
                   "--queries", str(args.queries), "--local-queries", str(args.local_queries), "--workdir", workdir]
            cmd += ["--keep"] if args.keep else []
            for flag, value in (("--hnsw-ef", args.hnsw_ef), ("--element-prefetch", args.element_prefetch)):
                cmd += [flag, str(value)] if value is not None else []
            done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
            if done.returncode != 0:
                why = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
                rows.append({"engine": engine, "n": n, "skipped": why[:80]})
            else:
                rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), file=sys.stderr)
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    cols = [("n", "N", "{:d}"), ("engine", "engine", "{}"), ("p50_ms", "search p50 ms", "{:.1f}"),
            ("p95_ms", "search p95 ms", "{:.1f}"),
            ("cpu_p50_ms", "search CPU p50 ms", "{:.1f}"),
            ("global_ms", "of it global", "{:.1f}"), ("elements_ms", "elements", "{:.1f}"), ("pdq_ms", "PDQ", "{:.1f}"),
            ("fetch_ms", "vector fetch", "{:.1f}"), ("check_p50_ms", "check p50 ms", "{:.0f}"), ("recall_global", "R@10 global", "{:.3f}"),
            ("recall_elements", "R@10 elements", "{:.3f}"), ("rss_mb", "RSS MB", "{:.0f}"),
            ("rss_anon_mb", "of it heap MB", "{:.0f}"),
            ("disk_per_note_kb", "disk KB/note", "{:.1f}"), ("open_s", "open s", "{:.2f}"),
            ("ingest_notes_s", "ingest notes/s", "{:.0f}"), ("index_build_s", "HNSW build s", "{:.1f}")]
    print("| " + " | ".join(c[1] for c in cols) + " |")
    print("|" + "---|" * len(cols))
    for row in rows:
        if "skipped" in row:
            print(f"| {row['n']} | {row['engine']} | skipped: {row['skipped']} |" + " |" * (len(cols) - 3))
            continue
        print("| " + " | ".join(fmt.format(row[k]) if k in row else "-" for k, _, fmt in cols) + " |")


if __name__ == "__main__":
    main()
