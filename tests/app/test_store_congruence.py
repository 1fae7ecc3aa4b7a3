"""Congruence: every store operation and query on Qdrant Edge (the embedded engine) and on the qdrant-client
API path (its local mode stands in for a Qdrant server, as in qdrant-client's own tests/congruence_tests),
answers compared: identical in exact mode, recall@10 >= 0.98 with Edge's HNSW.
"""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
from PIL import Image

from app.image_hashes import pdq_hash
from app.store import EdgeStore, QdrantStore, StoreConfig
from encoder.types import ElementKind, EncodedNote, LocalVector

DIMS = (64, 128, 256, 512)
D = DIMS[-1]


def unit(rng: np.random.Generator, n: int, dim: int = D) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)  # (n, dim)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def clustered(rng: np.random.Generator, n: int, centers: np.ndarray, noise: float = 0.6) -> np.ndarray:
    """(n, D) unit vectors around random centers: neighbours are real neighbours, not ties of noise."""
    v = centers[rng.integers(0, len(centers), n)] + noise * unit(rng, n)  # (n, D)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def make_notes(rng: np.random.Generator, n: int, version: str = "v1") -> list[EncodedNote]:
    centers = unit(rng, 20)  # (20, D)
    out = []
    for i in range(n):
        n_images = int(rng.integers(0, 3))
        vecs = clustered(rng, 2 * n_images + 1, centers)  # (E, D)
        locals_ = [LocalVector(ElementKind.IMAGE, k, vecs[k], image_index=k, box=(0.0, 0.0, 1.0, 1.0))
                   for k in range(n_images)]
        locals_ += [LocalVector(ElementKind.CROP, k, vecs[n_images + k], image_index=k, box=(0.1, 0.1, 0.5, 0.5))
                    for k in range(n_images)]
        locals_.append(LocalVector(ElementKind.TITLE, 0, vecs[-1], text=f"title {i}"))
        out.append(EncodedNote(f"n{i:03d}", clustered(rng, 1, centers)[0], locals_, version))
    return out


PHOTOS = [pdq_hash(Image.fromarray(getattr(skimage.data, name)()).convert("RGB"))
          for name in ("astronaut", "coffee", "rocket", "chelsea")]


@pytest.fixture
def engines(tmp_path):
    """(Edge, qdrant-client local mode), both exact, both holding the same 60 notes (some with PDQ)."""
    config = StoreConfig(exact=True)
    edge = EdgeStore(tmp_path / "edge", config)
    client = QdrantStore.open_local(tmp_path / "local", config)
    notes = make_notes(np.random.default_rng(0), 60)
    for store in (edge, client):
        store.ensure_collections("v1", DIMS)
        for i, note in enumerate(notes):
            n_images = sum(1 for e in note.locals if e.kind == ElementKind.IMAGE)
            pdq = [PHOTOS[(i + k) % 4] for k in range(n_images)] if i % 3 == 0 else []
            store.upsert_note(note, pdq, {"title": f"note {i}", "author": f"a{i % 5}"})
    yield edge, client, notes
    edge.close()
    client.close()


def global_rows(hits):
    return [(h.note_id, round(h.score, 4), h.title, h.stage) for h in hits]


def element_rows(rows):
    return [[(h.note_id, h.kind, h.index, round(h.score, 4), h.image_index, h.box, h.text, h.pdq) for h in row]
            for row in rows]


def without_time(payload: dict) -> dict:
    return {k: v for k, v in payload.items() if k != "indexed_at"}


def test_reads_agree(engines):
    edge, client, notes = engines
    assert (edge.count_notes(), edge.count_elements()) == (client.count_notes(), client.count_elements())
    assert edge.versions() == client.versions() == ["v1"] and edge.active_version() == client.active_version()
    for note in notes[:12]:
        a, b = edge.get_note(note.note_id), client.get_note(note.note_id)
        assert without_time(a.payload) == without_time(b.payload) and a.elements == b.elements
    ids = [n.note_id for n in notes[:7]] + ["missing"]
    va, vb = edge.note_vectors(ids, D), client.note_vectors(ids, D)
    assert sorted(va) == sorted(vb) == sorted(ids[:-1])
    for nid in va:
        np.testing.assert_allclose(va[nid].global_vector, vb[nid].global_vector, atol=1e-6)
        order_a = {(e.kind, e.index): i for i, e in enumerate(va[nid].elements)}
        order_b = {(e.kind, e.index): i for i, e in enumerate(vb[nid].elements)}
        assert sorted(order_a) == sorted(order_b)
        for key in order_a:
            np.testing.assert_allclose(va[nid].element_vectors[order_a[key]], vb[nid].element_vectors[order_b[key]],
                                       atol=1e-6)

    def all_ids(store):
        seen, cursor = [], None
        while True:
            page, cursor = store.note_ids(cursor, limit=16)
            seen += page
            if cursor is None:
                return seen
    assert all_ids(edge) == all_ids(client)  # same point-id order


@pytest.mark.parametrize("use_prefetch", [False, True])
def test_exact_search_is_identical(engines, use_prefetch):
    edge, client, notes = engines
    rng = np.random.default_rng(1)
    for note in notes[:10]:
        q = note.global_vector + 0.3 * unit(rng, 1)[0]  # (D,)
        q /= np.linalg.norm(q)
        assert global_rows(edge.search_global(q, 10, use_prefetch=use_prefetch)) == \
            global_rows(client.search_global(q, 10, use_prefetch=use_prefetch))
        assert global_rows(edge.search_global(q, 5, exclude_note_id=note.note_id, use_prefetch=use_prefetch)) == \
            global_rows(client.search_global(q, 5, exclude_note_id=note.note_id, use_prefetch=use_prefetch))
        only = [n.note_id for n in notes[20:40]]
        got = edge.search_global(q, 5, use_prefetch=use_prefetch, only=only)
        assert global_rows(got) == global_rows(client.search_global(q, 5, use_prefetch=use_prefetch, only=only))
        assert {h.note_id for h in got} <= set(only) and len(got) == 5
        queries = np.stack([e.vector for e in note.locals])  # (E, D)
        assert element_rows(edge.search_elements(queries, 6, note.note_id, use_prefetch)) == \
            element_rows(client.search_elements(queries, 6, note.note_id, use_prefetch))
        assert element_rows(edge.search_elements(queries, 4, use_prefetch=use_prefetch, only=only)) == \
            element_rows(client.search_elements(queries, 4, use_prefetch=use_prefetch, only=only))
        light = edge.search_elements(queries, 6, note.note_id, use_prefetch, details=False)
        assert element_rows(light) == element_rows(client.search_elements(queries, 6, note.note_id, use_prefetch,
                                                                          details=False))
        assert [r[:4] for row in element_rows(light) for r in row] == \
            [r[:4] for row in element_rows(edge.search_elements(queries, 6, note.note_id, use_prefetch)) for r in row]
        assert all(h.image_index is h.box is h.text is h.pdq is None for row in light for h in row)
    assert edge.search_global(notes[0].global_vector, 3, only=[]) == client.search_global(
        notes[0].global_vector, 3, only=[]) == []


def test_pdq_search_is_identical(engines):
    edge, client, _ = engines

    def rows(hits):  # the same photo is stored many times: equal distances come in any order
        return sorted(hits, key=lambda h: (h.distance, h.note_id, h.index))
    for photo in PHOTOS:
        a = edge.search_pdq(photo, 31, limit=50)
        assert rows(a) == rows(client.search_pdq(photo, 31, limit=50)) and a and all(h.distance == 0 for h in a)
        assert rows(edge.search_pdq(photo, 31, 50, exclude_note_id="n000")) == \
            rows(client.search_pdq(photo, 31, 50, exclude_note_id="n000"))
    batch = edge.search_pdq_batch(PHOTOS, 31, 50, exclude_note_id="n000")
    want = client.search_pdq_batch(PHOTOS, 31, 50, exclude_note_id="n000")
    assert [rows(r) for r in batch] == [rows(r) for r in want]
    assert [rows(r) for r in batch] == [rows(edge.search_pdq(p, 31, 50, exclude_note_id="n000")) for p in PHOTOS]
    assert edge.search_pdq_batch([], 31) == client.search_pdq_batch([], 31) == []


def test_writes_agree(engines):
    edge, client, notes = engines
    rng = np.random.default_rng(2)
    shrunk = EncodedNote("n003", notes[3].global_vector, notes[3].locals[-1:], "v1")
    grown = make_notes(rng, 1)[0]
    grown = EncodedNote("n004", grown.global_vector, grown.locals, "v1")
    fresh = [EncodedNote(n.note_id, n.global_vector, n.locals, "v2") for n in make_notes(rng, 30)]
    for store in (edge, client):
        store.upsert_note(shrunk, [], {"title": "shrunk"})
        store.upsert_note(grown, [], {"title": "grown"})
        assert store.delete_note("n005") is True and store.delete_note("n005") is False
        assert store.set_note_payload("n006", {"tags": ["bank-a"]}) is True
        assert store.set_note_payload("missing", {"tags": []}) is False
        store.ensure_collections("v2", DIMS)
        for note in fresh:
            store.upsert_note(note, [], {})
    assert (edge.count_notes(), edge.count_elements()) == (client.count_notes(), client.count_elements())
    for nid in ("n003", "n004", "n006"):
        assert without_time(edge.get_note(nid).payload) == without_time(client.get_note(nid).payload)
        assert edge.get_note(nid).elements == client.get_note(nid).elements
    assert edge.get_note("n006").payload["tags"] == ["bank-a"] and edge.get_note("n005") is None
    q = fresh[0].global_vector
    assert global_rows(edge.search_global(q, 10, use_prefetch=False)) == \
        global_rows(client.search_global(q, 10, use_prefetch=False))  # still v1: v2 fills beside it
    for store in (edge, client):
        store.switch_alias("v2")
    assert edge.active_version() == client.active_version() == "v2"
    assert global_rows(edge.search_global(q, 10, use_prefetch=False)) == \
        global_rows(client.search_global(q, 10, use_prefetch=False))
    assert edge.count_notes() == client.count_notes() == 30
    for store in (edge, client):
        store.drop_version("v1")
    assert edge.versions() == client.versions() == ["v2"]


def test_hnsw_recall_at_10_against_the_exact_answer(tmp_path):
    """Edge with a real HNSW index (optimised, every segment indexed) vs qdrant-client's exact answer."""
    rng = np.random.default_rng(3)
    n = 3000
    centers = unit(rng, 60)
    g = clustered(rng, n, centers, noise=0.8)  # (n, D)
    edge = EdgeStore(tmp_path / "edge", StoreConfig(indexing_threshold_kb=64, optimize_points=10**9))
    client = QdrantStore.open_local(tmp_path / "local")
    try:
        for store in (edge, client):
            store.ensure_collections("v1", DIMS)
            for i in range(n):
                store.upsert_note(EncodedNote(f"n{i}", g[i], [], "v1"), [], {})
        edge.optimize()
        assert edge._shards["v1"].info().indexed_vectors_count >= n  # the HNSW graph is what is searched
        queries = clustered(rng, 40, centers, noise=0.8)  # (40, D)
        for use_prefetch in (False, True):
            found = 0
            for q in queries:
                want = {h.note_id for h in client.search_global(q, 10, use_prefetch=False)}
                found += len(want & {h.note_id for h in edge.search_global(q, 10, use_prefetch=use_prefetch)})
            assert found / (10 * len(queries)) >= 0.98, (use_prefetch, found)
    finally:
        edge.close()
        client.close()
