"""Notes/s through the whole indexing pipeline (load photo, PDQ, encode, upsert, registry) in-process vs 1 and
2 Celery worker processes on Redis, and the broker's overhead per task. Run by hand:

    .venv/bin/python benchmarks/bench_workers.py [--notes 48] [--chunk 8] [--pings 200] [--redis URL]

Real grocery photos from ../shared/data/grocery. Ratios are against the in-process run of the same script.
Each process runs torch with --threads threads. Local-mode Qdrant allows one process per folder and there is
no Qdrant server here, so with 2 workers each worker writes its own local Qdrant folder (QDRANT_PATH per
worker) and both share the SQLite registry: the vector writes are split, everything else is the real path.
Uses Redis db 14 (flushed). OCR is off (benchmarks/bench_encoder.py covers the encoder itself).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.workers.conftest import grocery_photos, note_record, write_notes_file  # noqa: E402


def start_worker(env: dict[str, str], log: Path, name: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "-Q", "index,backfill,audit",
           "-c", "1", "--loglevel=WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat",
           "-n", f"{name}@%h"]
    with log.open("w") as out:
        return subprocess.Popen(cmd, cwd=log.parent, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def wait_ready(logs: list[Path], procs: list[subprocess.Popen], timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all("worker process ready" in p.read_text() for p in logs):
            return
        for proc, log in zip(procs, logs):
            if proc.poll() is not None:
                raise SystemExit(f"worker died:\n{log.read_text()[-2000:]}")
        time.sleep(0.5)
    raise SystemExit("workers did not become ready")


def indexed_count(sessions) -> int:
    from app.records import registry

    with sessions() as s:
        return registry.count_by_status(s)["indexed"]


def run_workers(n_workers: int, notes_file: Path, n: int, chunk: int, redis_url: str, threads: int,
                pings: int, work: Path) -> tuple[float, float | None, float | None]:
    """(notes/s, ms per ping round trip (sequential), ms per ping (pipelined)) with n_workers workers."""
    import redis

    from app.settings import Settings
    from workers.backfill import job_sessions
    from workers.celery_app import app, configure
    from workers.submit import submit_notes
    from workers.tasks import ping_task

    redis.Redis.from_url(redis_url).flushdb()
    home = work / f"home-{n_workers}w"
    db = f"sqlite:///{(home / 'uninote.db').as_posix()}"
    settings = Settings(UNINOTE_HOME=home, database_url=db, celery_broker_url=redis_url,
                        celery_result_backend=redis_url, ocr_enabled=False)
    configure(app, settings)
    sessions = job_sessions(settings)  # migrates the shared registry before the workers start
    procs, logs = [], []
    for k in range(n_workers):
        env = dict(os.environ) | {"UNINOTE_HOME": str(home), "DATABASE_URL": db, "QDRANT_PATH": str(home / f"qdrant-{k}"),
                                  "CELERY_BROKER_URL": redis_url, "CELERY_RESULT_BACKEND": redis_url,
                                  "OCR_ENABLED": "false", "OMP_NUM_THREADS": str(threads)}
        logs.append(home / f"worker-{k}.log")
        procs.append(start_worker(env, logs[-1], f"bench{k}"))
    try:
        wait_ready(logs, procs)
        t0 = time.perf_counter()
        submit_notes(notes_file, chunk_size=chunk, settings=settings)
        while indexed_count(sessions) < n:
            time.sleep(0.05)
        rate = n / (time.perf_counter() - t0)
        seq = pipe = None
        if pings:
            t0 = time.perf_counter()
            for _ in range(pings):
                ping_task.delay().get(timeout=60)
            seq = (time.perf_counter() - t0) / pings * 1e3
            t0 = time.perf_counter()
            results = [ping_task.delay() for _ in range(pings)]
            for r in results:
                r.get(timeout=60)
            pipe = (time.perf_counter() - t0) / pings * 1e3
        return rate, seq, pipe
    finally:
        for p in procs:
            stop(p)


def run_in_process(notes_file: Path, n: int, chunk: int, threads: int, pings: int, work: Path) -> tuple[float, float]:
    import torch

    from app.library import Library
    from app.settings import Settings
    from workers import runtime
    from workers.celery_app import app, configure
    from workers.submit import submit_notes
    from workers.tasks import ping_task

    torch.set_num_threads(threads)
    settings = Settings(UNINOTE_HOME=work / "home-inprocess", ocr_enabled=False)
    configure(app, settings)
    lib = Library.open(settings)
    runtime.use_library(lib)
    try:
        t0 = time.perf_counter()
        submit_notes(notes_file, chunk_size=chunk, settings=settings)
        rate = n / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _ in range(pings):
            ping_task.delay().get()
        ping_ms = (time.perf_counter() - t0) / max(pings, 1) * 1e3
        return rate, ping_ms
    finally:
        runtime.use_library(None)
        lib.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notes", type=int, default=48)
    ap.add_argument("--chunk", type=int, default=8, help="note ids per index_notes_task")
    ap.add_argument("--pings", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        records = [note_record(f"g{i:03d}", p, t, b) for i, (p, t, b) in enumerate(grocery_photos(args.notes))]
        # one copy of the notes file per run, so every run indexes the same notes from scratch
        files = {name: write_notes_file(work / f"notes-{name}", records) for name in ("inproc", "w1", "w2")}
        base, ping_local = run_in_process(files["inproc"], args.notes, args.chunk, args.threads, args.pings, work)
        r1, seq1, pipe1 = run_workers(1, files["w1"], args.notes, args.chunk, args.redis, args.threads, args.pings, work)
        r2, _, _ = run_workers(2, files["w2"], args.notes, args.chunk, args.redis, args.threads, 0, work)

    print(f"\n{args.notes} real grocery notes, {args.chunk} per task, torch threads {args.threads} per process, "
          f"{os.cpu_count()} CPUs (shared)")
    print(f"{'pipeline':<34}{'notes/s':>10}{'x in-process':>14}")
    for name, rate in (("in-process (no broker)", base), ("1 worker process (Redis)", r1), ("2 worker processes (Redis)", r2)):
        print(f"{name:<34}{rate:>10.2f}{rate / base:>14.2f}")
    print(f"\n{'ping_task round trip':<34}{'ms/task':>10}")
    print(f"{'in-process call (eager)':<34}{ping_local:>10.3f}")
    print(f"{'Redis, one at a time':<34}{seq1:>10.3f}")
    print(f"{'Redis, {0} queued at once'.format(args.pings):<34}{pipe1:>10.3f}")


if __name__ == "__main__":
    main()
