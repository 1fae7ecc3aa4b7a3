"""Checks/s and latency (p50 / p95) of POST /v1/check with 1, 4 and 16 concurrent clients against a real
`uninote serve` on loopback, beside the same checks in-process (UniNoteClient.check), in one run.

    .venv/bin/python benchmarks/bench_api.py [--checks 24]

Bounded: --checks per concurrency level; loopback only; a fresh tmp HOME for each side (same notes:
skimage photos), save=False so nothing accumulates. Prints a table; ratios are against in-process.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import api_support as support  # noqa: E402
from app.client import UniNoteClient  # noqa: E402
from app.records import api_keys  # noqa: E402
from app.records.db import transaction  # noqa: E402
from app.settings import Settings  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]


def run(call, queries: list[dict], concurrency: int) -> tuple[float, float, float]:
    latencies: list[float] = []

    def one(q):
        t0 = time.perf_counter()
        call(q)
        latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, queries))
    wall = time.perf_counter() - t0
    return len(queries) / wall, percentile(latencies, 50) * 1000, percentile(latencies, 95) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=24, help="checks per concurrency level")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-api-"))
    try:
        photos = tmp / "photos"
        support.write_photos(photos)
        home, local_home = tmp / "server", tmp / "local"
        for h in (home, local_home):
            with UniNoteClient.open(Settings(UNINOTE_HOME=h, ocr_enabled=False)) as c:
                c.index(support.library_notes(photos))
                if h == home:
                    with transaction(c.library.sessions) as s:
                        _, token = api_keys.create_key(s, "bench", "check")
        names = ["astronaut_copy", "coffee_copy", "rocket", "chelsea"]
        queries = [{"note_id": f"bench-{i}", "title": "incoming", "images": [str(photos / f"{names[i % 4]}.jpg")]}
                   for i in range(args.checks)]
        port = support.free_port()
        proc = support.start_server(home, port, tmp / "server.log", support.server_env(home, None))
        url = f"http://127.0.0.1:{port}"
        try:
            support.wait_until_up(url, proc, tmp / "server.log")
            rows = []
            with UniNoteClient.open(Settings(UNINOTE_HOME=local_home, ocr_enabled=False)) as local, \
                    UniNoteClient.connect(url, token, timeout_s=600) as remote:
                local.check(queries[0], save=False)  # warm both sides
                remote.check(queries[0], save=False)
                for concurrency in (1, 4, 16):
                    base = run(lambda q: local.check(q, save=False), queries, concurrency)
                    over = run(lambda q: remote.check(q, save=False), queries, concurrency)
                    rows.append((concurrency, base, over))
        finally:
            support.stop(proc)
        print(f"{'clients':>7} | {'in-process/s':>12} {'p50 ms':>8} {'p95 ms':>8} | {'HTTP/s':>8} {'p50 ms':>8} "
              f"{'p95 ms':>8} | {'HTTP / in-process':>17}")
        for c, (b_rate, b50, b95), (o_rate, o50, o95) in rows:
            print(f"{c:>7} | {b_rate:>12.2f} {b50:>8.0f} {b95:>8.0f} | {o_rate:>8.2f} {o50:>8.0f} {o95:>8.0f} | "
                  f"{o_rate / b_rate:>17.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
