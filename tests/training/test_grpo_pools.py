"""Graded pools on plain element lists."""

import random

import pytest

from encoder.types import ElementKind
from training.graded_pools import (
    Element,
    PoolNote,
    build_graded_pools,
    candidate_grades,
    excluded_rows,
    graded_targets,
    pool_library,
    split_note,
)

IMG, TXT = ElementKind.IMAGE, ElementKind.TITLE


def note(nid, n_img, n_txt=1):
    return [Element(IMG, f"{nid}/img{i}") for i in range(n_img)] + [Element(TXT, f"{nid}/t{i}") for i in range(n_txt)]


def test_split_is_disjoint_complete_and_keeps_an_image_in_the_query():
    els = note("n", 5, 2)
    for seed in range(20):
        a, b = split_note("n", els, random.Random(seed))
        assert a and b and not set(a) & set(b) and set(a) | set(b) == set(els)
        assert any(e.kind == IMG for e in a)
    a, b = split_note("n", note("n", 1, 0) + [Element(ElementKind.BODY, "n/b0")], random.Random(0))
    assert [e.kind for e in a] == [IMG] and [e.kind for e in b] == [ElementKind.BODY]
    with pytest.raises(ValueError, match="at least 2 elements"):
        split_note("n", note("n", 1, 0), random.Random(0))


def test_graded_targets_add_more_and_more_of_the_query_images():
    els = note("n", 6, 2)
    a, b = split_note("n", els, random.Random(0))
    a_img = [e for e in a if e.kind == IMG]
    assert len(a_img) < len(a)  # A holds a text here, so the whole note leads the list
    targets, grades = graded_targets("n", a, b)
    assert grades == list(range(len(a_img) + 2, 0, -1))
    assert targets[0].content == frozenset(els) and targets[0].note_id == "n"
    assert set(targets[-1].elements) == set(b)  # B alone is the lowest relevant grade
    for better, worse in zip(targets, targets[1:]):
        assert set(worse.elements) < set(better.elements)
    for better, worse in zip(targets[1:], targets[2:]):
        assert better.n_images == worse.n_images + 1
    assert all(not set(t.elements) & (set(a) - set(a_img)) for t in targets[1:])  # A's texts only in the whole


def test_a_query_is_not_ranked_against_its_own_note_cut_by_another_pool():
    notes = {f"n{i}": note(f"n{i}", 3) for i in range(4)}
    pools = build_graded_pools(notes, seed=0, noise_per_pool=3)
    lib = pool_library(pools, [PoolNote(n, n, tuple(e)) for n, e in notes.items()])
    for p, rows in zip(pools, excluded_rows(pools, lib)):
        assert all(lib[r].source_id == p.query.source_id and lib[r].content not in p.grade_of() for r in rows)
        cut_from_own = [n for q in pools for n in q.noise if n.source_id == p.query.source_id]
        assert len(rows) == len({n.content for n in cut_from_own} - set(p.grade_of()))


def test_pools_noise_comes_from_other_groups_and_the_library_mixes_everything():
    notes = {f"n{i}": note(f"n{i}", 3) for i in range(6)}
    group = {f"n{i}": f"p{i // 2}" for i in range(6)}  # two notes per product
    pools = build_graded_pools(notes, seed=0, noise_per_pool=3, group_of=group)
    assert len(pools) == 6
    for p in pools:
        assert all(group[n.source_id] != group[p.query.source_id] for n in p.noise) and len(p.noise) == 3
    whole = [PoolNote(n, n, tuple(els)) for n, els in notes.items()]
    lib = pool_library(pools, whole)
    contents = [n.content for n in lib]
    assert len(set(contents)) == len(contents)  # no two candidates with one content
    assert {t.content for p in pools for t in p.targets} <= set(contents)
    p0 = pools[0]
    cands = [p0.targets[1], pools[1].targets[0], p0.noise[0], p0.targets[0]]
    assert candidate_grades(p0, cands) == [p0.grades[1], 0, 0, p0.grades[0]]
    # here A holds 2 images and no text, so the best target (B + both) is the whole note: a library copy
    # of the note gets the same grade and is not a second candidate
    assert p0.targets[0].content == frozenset(notes[p0.query.source_id])
    assert candidate_grades(p0, [PoolNote("copy", "n0", tuple(notes[p0.query.source_id]))]) == [p0.grades[0]]
    assert len(lib) == len(pool_library(pools, [])) + len(whole) - len(pools)
    assert build_graded_pools(notes, seed=0, noise_per_pool=3, group_of=group) == pools  # deterministic
    with pytest.raises(ValueError, match="two different contents"):
        pool_library(pools, [PoolNote(pools[0].targets[0].note_id, "x", (Element(TXT, "other"),))])
