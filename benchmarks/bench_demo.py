"""The demo corpus, measured end to end in one run (issue 2's numbers). Run by hand:

    .venv/bin/python benchmarks/bench_demo.py [--text-notes 150] [--workdir /tmp/uninote-bench]

Prints one table: encode throughput (notes/s and images/s through the in-process compact encoder),
index size per note (Qdrant points and bytes on disk), and audit search latency p50/p95 with the
Matryoshka prefix prefetch (global_64 -> global_512) vs the full dim alone, over the demo's queries.
Ratios are against the full-dim search measured in the same run.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np

from app.audit import check
from app.demo_corpus import build_demo_library, plant_queries
from app.library import Library
from app.notes import load_notes
from app.preparation import prepare_note
from app.settings import Settings


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--text-notes", type=int, default=150)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/uninote-bench"))
    args = ap.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    settings = Settings(UNINOTE_HOME=args.workdir / "home", ocr_enabled=False)
    notes, _ = load_notes(build_demo_library(args.workdir / "library", n_text_notes=args.text_notes))
    queries, _ = load_notes(plant_queries(notes, args.workdir / "queries"))
    lib = Library.open(settings)

    prepared = [prepare_note(n, ocr_enabled=False) for n in notes]
    t0 = time.perf_counter()
    lib.encoder.encode([p.inputs for p in prepared])
    encode_s = time.perf_counter() - t0
    images = [p.inputs for p in prepared if p.inputs.images]
    images = [type(n)(n.note_id, images=n.images) for n in images]  # the image path alone (towers + heads)
    n_images = sum(len(n.images) for n in images)
    t0 = time.perf_counter()
    lib.encoder.encode(images)
    image_s = time.perf_counter() - t0

    lib.index(notes)
    lib.close()  # flush the local store before measuring it
    size = folder_bytes(settings.resolved_qdrant_path)
    lib = Library.open(settings)
    points = lib.store.count_notes() + lib.store.count_elements()

    prepared_q = [prepare_note(q, ocr_enabled=False) for q in queries]
    encoded = lib.encoder.encode([p.inputs for p in prepared_q])
    latency: dict[bool, list[float]] = {True: [], False: []}
    for use_prefetch in (False, True, False, True):  # interleaved, so load drifts hit both alike
        lib.store.prefetch_default = use_prefetch
        for e, p in zip(encoded, prepared_q):
            t0 = time.perf_counter()
            check(e, p.pdq, lib.store, lib.audit_config)
            latency[use_prefetch].append((time.perf_counter() - t0) * 1000)
    lib.close()

    full_p50 = float(np.percentile(latency[False], 50))
    rows = [
        ("notes indexed", f"{len(notes)}", ""),
        ("encode notes/s", f"{len(notes) / encode_s:.2f}", ""),
        ("encode images/s", f"{n_images / image_s:.2f}", f"{n_images} images (+ their crops), no text"),
        ("points per note", f"{points / len(notes):.1f}", "1 global + elements"),
        ("bytes on disk per note", f"{size / len(notes) / 1024:.1f} KiB", "local Qdrant folder"),
    ]
    for use_prefetch, name in ((False, "check, full dim 512"), (True, "check, prefetch 64 -> 512")):
        p50, p95 = np.percentile(latency[use_prefetch], [50, 95])
        rows.append((f"{name} p50/p95", f"{p50:.1f} / {p95:.1f} ms", f"x{p50 / full_p50:.2f} of full-dim p50"))
    width = max(len(r[0]) for r in rows) + 2
    print(f"{'measure':<{width}}{'value':>22}  note")
    for name, value, note in rows:
        print(f"{name:<{width}}{value:>22}  {note}")


if __name__ == "__main__":
    main()
