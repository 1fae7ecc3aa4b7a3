"""Graded pools for stage 2 (GRPO ranking alignment, paper §3.3), on plain data structures.

A note's elements are split into two disjoint halves: A (the query) and B. The graded target list is

    B + all of A's images   (grade |A_img| + 1, the best)
    B + all but one of them
    ...
    B alone                 (grade 1)

so the more of the query's own content a target carries, the higher it must rank. Each pool also holds
`noise` pseudo-notes: a random half of notes from *other* groups (products), grade 0. They have the
same "partial note" shape as the targets, so the policy cannot learn "partial notes are relevant".
Pools are mixed into the library (whole notes, grade 0 for every query) and the stage-1 model retrieves
the G candidates of each query from that mix (training/grpo_task.py).

Elements are referenced by `Element(kind, key)`, `key` naming the element's cached tower features; this
module never touches tensors.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Mapping, Sequence

from encoder.types import ElementKind


@dataclass(frozen=True)
class Element:
    """One local element of a note: its kind and the key of its cached features."""

    kind: ElementKind
    key: str


@dataclass(frozen=True)
class PoolNote:
    """A (pseudo-)note: a set of elements. `note_id` is unique in a library; `source_id` the real note."""

    note_id: str
    source_id: str
    elements: tuple[Element, ...]

    @property
    def n_images(self) -> int:
        return sum(e.kind == ElementKind.IMAGE for e in self.elements)


@dataclass(frozen=True)
class GradedPool:
    """One query with its graded targets (best first, grades strictly descending, all > 0) and noise."""

    query: PoolNote
    targets: tuple[PoolNote, ...]
    grades: tuple[int, ...]
    noise: tuple[PoolNote, ...]

    def grade_of(self) -> dict[str, int]:
        """note_id -> grade for this query (targets only; every other note is grade 0)."""
        return dict(zip((t.note_id for t in self.targets), self.grades))


def split_note(
    note_id: str, elements: Sequence[Element], rng: random.Random, query_fraction: float = 0.5
) -> tuple[tuple[Element, ...], tuple[Element, ...]]:
    """Split a note's elements into disjoint halves (A = query, B), both non-empty.

    A takes round(query_fraction * n) of the images (at least 1 when the note has any) and the same
    fraction of the text elements; if that leaves B empty, one element moves from A to B.
    Raises ValueError if the note has fewer than 2 elements or query_fraction is outside (0, 1).
    """
    if not 0.0 < query_fraction < 1.0:
        raise ValueError(f"query_fraction must be in (0, 1), got {query_fraction}")
    if len(elements) < 2:
        raise ValueError(f"note {note_id!r}: needs at least 2 elements to split, has {len(elements)}")
    images = [e for e in elements if e.kind == ElementKind.IMAGE]
    texts = [e for e in elements if e.kind != ElementKind.IMAGE]
    rng.shuffle(images)
    rng.shuffle(texts)
    n_img = max(1, round(query_fraction * len(images))) if images else 0
    n_txt = round(query_fraction * len(texts))
    a = images[:n_img] + texts[:n_txt]
    b = images[n_img:] + texts[n_txt:]
    if not b:
        # keep an image in A when possible, move the last element (a text, or an image if no text) to B
        b = [a.pop()]
    return tuple(a), tuple(b)


def graded_targets(note_id: str, a: Sequence[Element], b: Sequence[Element]) -> tuple[list[PoolNote], list[int]]:
    """The graded target list for query half `a`: B + k of A's images for k = |A_img| .. 0, best first.

    Returns (targets, grades), grades = [|A_img| + 1, ..., 1]. Target ids are f"{note_id}#B+{k}".
    """
    a_images = [e for e in a if e.kind == ElementKind.IMAGE]
    targets, grades = [], []
    for k in range(len(a_images), -1, -1):
        targets.append(PoolNote(f"{note_id}#B+{k}", note_id, tuple(b) + tuple(a_images[:k])))
        grades.append(k + 1)
    return targets, grades


def build_graded_pools(
    notes: Mapping[str, Sequence[Element]],
    *,
    seed: int,
    noise_per_pool: int = 4,
    query_fraction: float = 0.5,
    group_of: Mapping[str, str] | None = None,
) -> list[GradedPool]:
    """One graded pool per note with at least 2 elements (others are skipped), deterministic in `seed`.

    notes: note_id -> its elements. group_of: note_id -> group (e.g. product); noise is drawn from notes
    of other groups (of other notes when None). Noise ids are f"{query_id}#noise{j}:{source_id}".
    Raises ValueError when fewer than 2 notes can be split or noise_per_pool < 0.
    """
    if noise_per_pool < 0:
        raise ValueError(f"noise_per_pool must be >= 0, got {noise_per_pool}")
    rng = random.Random(seed)
    ids = sorted(n for n, els in notes.items() if len(els) >= 2)
    if len(ids) < 2:
        raise ValueError(f"need at least 2 notes with >= 2 elements to build pools, got {len(ids)}")
    group = group_of or {n: n for n in notes}
    missing = [n for n in ids if n not in group]
    if missing:
        raise ValueError(f"group_of: no group for notes {missing[:5]}")
    all_ids = sorted(notes)
    pools = []
    for note_id in ids:
        a, b = split_note(note_id, notes[note_id], rng, query_fraction)
        targets, grades = graded_targets(note_id, a, b)
        others = [n for n in all_ids if group.get(n, n) != group[note_id] and len(notes[n]) >= 1]
        noise = []
        for j, src in enumerate(rng.sample(others, min(noise_per_pool, len(others)))):
            els = list(notes[src])
            rng.shuffle(els)
            keep = max(1, len(els) // 2)
            noise.append(PoolNote(f"{note_id}#noise{j}:{src}", src, tuple(els[:keep])))
        query = PoolNote(f"{note_id}#A", note_id, a)
        pools.append(GradedPool(query, tuple(targets), tuple(grades), tuple(noise)))
    return pools


def pool_library(pools: Sequence[GradedPool], library: Sequence[PoolNote] = ()) -> list[PoolNote]:
    """Every pool's targets and noise mixed into `library` (whole notes): the search space of all queries.

    Raises ValueError on duplicate note ids.
    """
    out = list(library)
    for pool in pools:
        out.extend(pool.targets)
        out.extend(pool.noise)
    seen: set[str] = set()
    for n in out:
        if n.note_id in seen:
            raise ValueError(f"duplicate note id {n.note_id!r} in the pool library")
        seen.add(n.note_id)
    return out


def candidate_grades(pool: GradedPool, candidate_ids: Sequence[str]) -> list[int]:
    """The grades of `candidate_ids` (in the given order) for `pool`'s query; 0 for anything not a target."""
    grade = pool.grade_of()
    return [grade.get(c, 0) for c in candidate_ids]
