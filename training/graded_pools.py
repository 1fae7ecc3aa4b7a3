"""Graded pools for stage 2 (GRPO ranking alignment, paper §3.3), on plain data structures.

A note's elements are split into two disjoint halves: A (the query) and B. The graded target list is

    the whole note          (A + B; only when A holds text, else it is the next line)
    B + all of A's images   (grade |A_img| + 1, or + 2 under the whole note)
    B + all but one of them
    ...
    B alone                 (grade 1)

so the more of the query's own content a target carries, the higher it must rank. Each pool also holds
`noise` pseudo-notes: a random half of notes from *other* groups (products), grade 0. They have the
same "partial note" shape as the targets, so the policy cannot learn "partial notes are relevant".
Pools are mixed into the library (whole notes, grade 0 for every query) and the stage-1 model retrieves
the G candidates of each query from that mix (training/grpo_task.py).

Candidates of the query's own note that are not its targets (another pool's noise cut from this note)
share the query's content but are not graded: they are left out of that query's ranking
(`GradedPool.excludes`), as ISC 2021 leaves out self-matches.

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
    def content(self) -> frozenset[Element]:
        """The element set: two notes with the same content are the same candidate."""
        return frozenset(self.elements)

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

    def grade_of(self) -> dict[frozenset[Element], int]:
        """content -> grade for this query (targets only; any other content is grade 0).

        By content, not id: when A holds no text, the best target (B + all of A's images) *is* the whole
        note, and a library copy of it must get the same grade."""
        return dict(zip((t.content for t in self.targets), self.grades))

    def excludes(self, candidate: PoolNote) -> bool:
        """True for a candidate cut from the query's own note that is not one of its graded targets."""
        return candidate.source_id == self.query.source_id and candidate.content not in self.grade_of()


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
    """The graded target list for query half `a`, best first: the whole note (when A holds text), then
    B + k of A's images for k = |A_img| .. 0.

    Returns (targets, grades), grades strictly descending down to 1. Target ids are f"{note_id}#B+{k}"
    and `note_id` for the whole note (so it replaces the library's copy of the note).
    """
    a_images = [e for e in a if e.kind == ElementKind.IMAGE]
    targets = []
    if len(a_images) < len(a):  # A holds text: the whole note carries strictly more of A than B + A's images
        targets.append(PoolNote(note_id, note_id, tuple(b) + tuple(a)))
    for k in range(len(a_images), -1, -1):
        targets.append(PoolNote(f"{note_id}#B+{k}", note_id, tuple(b) + tuple(a_images[:k])))
    return targets, list(range(len(targets), 0, -1))


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

    Notes of identical content appear once (targets first, then noise, then the library): a duplicate
    would tie with its twin and make the ranking, and so the rewards, arbitrary.
    Raises ValueError on a note id used for two different contents.
    """
    out: list[PoolNote] = []
    seen: set[frozenset[Element]] = set()
    ids: set[str] = set()
    for n in [t for p in pools for t in p.targets] + [x for p in pools for x in p.noise] + list(library):
        if n.content in seen:
            continue
        if n.note_id in ids:
            raise ValueError(f"note id {n.note_id!r} is used for two different contents in the pool library")
        seen.add(n.content)
        ids.add(n.note_id)
        out.append(n)
    return out


def excluded_rows(pools: Sequence[GradedPool], library: Sequence[PoolNote]) -> list[list[int]]:
    """For each pool, the library rows its query must not rank (see GradedPool.excludes)."""
    by_source: dict[str, list[int]] = {}
    for i, n in enumerate(library):
        by_source.setdefault(n.source_id, []).append(i)
    return [[i for i in by_source.get(p.query.source_id, []) if p.excludes(library[i])] for p in pools]


def candidate_grades(pool: GradedPool, candidates: Sequence[PoolNote]) -> list[int]:
    """The grades of `candidates` (in the given order) for `pool`'s query; 0 for any non-target content."""
    grade = pool.grade_of()
    return [grade.get(c.content, 0) for c in candidates]
