"""`uninote demo`: index a library of real notes, check every planted copy and clear query, print the table.

Found@1: the copied library note is the top match. A query is *flagged* when its verdict is not "clear";
precision = flagged queries whose top match is the right original / all flagged queries; recall = copies
flagged with the right original / all copies (source of the metric: the usual detection precision/recall
at the configured thresholds, DUPLICATE_THRESHOLD and INFRINGEMENT_THRESHOLD).
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from app.demo_corpus import build_demo_library, plant_queries
from app.library import Library
from app.notes import load_notes


@dataclass
class KindRow:
    queries: int = 0
    found_at_1: int = 0
    flagged: int = 0


@dataclass
class DemoResult:
    rows: dict[str, KindRow] = field(default_factory=lambda: defaultdict(KindRow))
    true_flags: int = 0
    false_flags: int = 0
    n_copies: int = 0
    n_library: int = 0
    index_s: float = 0.0
    check_s: float = 0.0

    @property
    def precision(self) -> float:
        flagged = self.true_flags + self.false_flags
        return self.true_flags / flagged if flagged else 1.0

    @property
    def recall(self) -> float:
        return self.true_flags / self.n_copies if self.n_copies else 0.0

    def table(self) -> str:
        lines = [f"{'copy kind':<16}{'queries':>8}{'found@1':>9}{'flagged':>9}", "-" * 42]
        for kind, r in sorted(self.rows.items(), key=lambda kv: (kv[0] == "clear", kv[0])):
            found = "-" if kind == "clear" else str(r.found_at_1)
            lines.append(f"{kind:<16}{r.queries:>8}{found:>9}{r.flagged:>9}")
        copies = [r for k, r in self.rows.items() if k != "clear"]
        lines += ["-" * 42,
                  f"{'all copies':<16}{sum(r.queries for r in copies):>8}{sum(r.found_at_1 for r in copies):>9}"
                  f"{sum(r.flagged for r in copies):>9}",
                  f"threshold precision {self.precision:.3f}  recall {self.recall:.3f}  "
                  f"({self.true_flags} right flags, {self.false_flags} wrong flags)",
                  f"library {self.n_library} notes indexed in {self.index_s:.1f} s; "
                  f"{sum(r.queries for r in self.rows.values())} checks in {self.check_s:.1f} s"]
        return "\n".join(lines)


def run_demo(library: Library, workdir: Path, data: Path | None = None, *, seed: int = 0,
             n_text_notes: int = 150, progress=print) -> DemoResult:
    """Index `data` (or the built-in demo library), plant copies of it, check every query.

    Raises FileNotFoundError if `data` has no notes.jsonl.
    """
    lib_dir = data if data is not None else build_demo_library(workdir / "library", n_text_notes=n_text_notes,
                                                                   seed=seed)
    notes, bad = load_notes(lib_dir)
    for b in bad:
        progress(f"skipped {b}")
    progress(f"indexing {len(notes)} notes from {lib_dir} ...")
    result = DemoResult(n_library=len(notes))
    t0 = time.perf_counter()
    indexed = library.index(notes, source=str(lib_dir))
    result.index_s = time.perf_counter() - t0
    for nid, why in indexed.failed.items():
        progress(f"failed {nid}: {why}")
    queries, _ = load_notes(plant_queries(notes, workdir / "queries", seed=seed))
    progress(f"checking {len(queries)} queries ...")
    t0 = time.perf_counter()
    for q in queries:
        kind, original = q.metadata["copy_kind"], q.metadata["copy_of"]
        report = library.check(q, save=False)
        top = report.matches[0].note_id if report.matches else None
        flagged = report.verdict != "clear"
        row = result.rows[kind]
        row.queries += 1
        row.found_at_1 += int(original is not None and top == original)
        row.flagged += int(flagged)
        if original is not None:
            result.n_copies += 1
        if flagged:
            if original is not None and top == original:
                result.true_flags += 1
            else:
                result.false_flags += 1
    result.check_s = time.perf_counter() - t0
    return result
