"""How long a records read of a shared UniNoteClient waits while other threads check notes (issue 12, item 13).
Run by hand:

    .venv/bin/python benchmarks/bench_client_threads.py [--checkers 3] [--reads 40] [--threads 2]

One client on a tmp embedded library (local Qdrant, SQLite, the shipped compact encoder) with the four
skimage photos indexed. A reader thread calls client.audit_log() (a ~ms SQLite query) `--reads` times:
first with nothing else running (the baseline), then while `--checkers` threads run client.check() in a loop,
and once more with the calls wrapped in one client-wide lock, as the client did before (every call
serialised). The table gives the reader's p50 and max latency and the ratio of its p50 to the baseline's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from contextlib import nullcontext
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkers", type=int, default=3, help="threads running client.check in a loop")
    parser.add_argument("--reads", type=int, default=40, help="audit_log() calls per measurement")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args()

    import skimage.data
    import torch
    from PIL import Image

    from app.client import UniNoteClient
    from app.notes import Note
    from app.settings import Settings

    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench-client-threads-"))
    (tmp / "images").mkdir()
    notes = []
    for name in ("astronaut", "coffee", "rocket", "chelsea"):
        path = tmp / "images" / f"{name}.jpg"
        Image.fromarray(getattr(skimage.data, name)()).convert("RGB").save(path)
        notes.append(Note(note_id=name, title=f"My {name} photo", images=[path]))
    client = UniNoteClient.open(Settings(UNINOTE_HOME=tmp / "home", ocr_enabled=False))
    client.index(notes)
    client.check(notes[0].model_copy(update={"note_id": "warm-up"}), save=False)

    def measure(checkers: int, global_lock: threading.Lock | None) -> list[float]:
        guard = global_lock if global_lock is not None else nullcontext()
        stop = threading.Event()

        def check_loop(i: int) -> None:
            while not stop.is_set():
                with guard:
                    client.check(notes[i % len(notes)].model_copy(update={"note_id": f"q{i}"}), save=False)

        workers = [threading.Thread(target=check_loop, args=(i,)) for i in range(checkers)]
        for w in workers:
            w.start()
        time.sleep(1.0 if checkers else 0.0)  # let the checks reach the encoder
        waits = []
        for _ in range(args.reads):
            t0 = time.perf_counter()
            with guard:
                client.audit_log(limit=5)
            waits.append(time.perf_counter() - t0)
        stop.set()
        for w in workers:
            w.join()
        return waits

    rows = [("idle (baseline)", measure(0, None)),
            (f"{args.checkers} threads checking", measure(args.checkers, None)),
            (f"{args.checkers} threads, one global lock (before)", measure(args.checkers, threading.Lock()))]
    base = statistics.median(rows[0][1])
    print(f"{'reader during':<40} {'p50 ms':>9} {'max ms':>9} {'p50 / idle':>11}")
    print("-" * 72)
    for label, waits in rows:
        p50 = statistics.median(waits)
        print(f"{label:<40} {p50 * 1e3:>9.1f} {max(waits) * 1e3:>9.1f} {p50 / base:>11.1f}")
    client.close()


if __name__ == "__main__":
    main()
