"""Graded pools on plain element lists."""

import random

import pytest

from encoder.types import ElementKind
from training.graded_pools import (
    Element,
    build_graded_pools,
    candidate_grades,
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
    a, b = split_note("n", note("n", 6, 2), random.Random(0))
    targets, grades = graded_targets("n", a, b)
    a_img = [e for e in a if e.kind == IMG]
    assert grades == list(range(len(a_img) + 1, 0, -1))
    assert set(targets[-1].elements) == set(b)  # B alone is the lowest relevant grade
    for better, worse in zip(targets, targets[1:]):
        assert set(worse.elements) < set(better.elements)
        assert better.n_images == worse.n_images + 1
    assert all(not set(t.elements) & (set(a) - set(a_img)) for t in targets)  # A's texts never leak


def test_pools_noise_comes_from_other_groups_and_the_library_mixes_everything():
    notes = {f"n{i}": note(f"n{i}", 3) for i in range(6)}
    group = {f"n{i}": f"p{i // 2}" for i in range(6)}  # two notes per product
    pools = build_graded_pools(notes, seed=0, noise_per_pool=3, group_of=group)
    assert len(pools) == 6
    for p in pools:
        assert all(group[n.source_id] != group[p.query.source_id] for n in p.noise) and len(p.noise) == 3
    lib = pool_library(pools, [])
    assert len(lib) == sum(len(p.targets) + len(p.noise) for p in pools)
    p0 = pools[0]
    ids = [p0.targets[1].note_id, pools[1].targets[0].note_id, p0.noise[0].note_id, p0.targets[0].note_id]
    assert candidate_grades(p0, ids) == [p0.grades[1], 0, 0, p0.grades[0]]
    assert build_graded_pools(notes, seed=0, noise_per_pool=3, group_of=group) == pools  # deterministic
    with pytest.raises(ValueError, match="duplicate"):
        pool_library(pools, [pools[0].targets[0]])
