"""The embedded store (Qdrant Edge, tmp_path): writes, versions, locking, search vs numpy brute force.
The same operations on qdrant-client are compared in test_store_congruence.py."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import augly.image as imaugs
import numpy as np
import pytest
import skimage.data
from PIL import Image
from qdrant_client import QdrantClient

from app.image_hashes import PdqHash, pdq_hash
from app.settings import Settings
from app.store import (CollectionsMissingError, EdgeStore, QdrantStore, StoreConfig, VectorStore, element_point_id,
                       note_point_id, physical_name)
from app.store import open_store as open_by_settings
from app.store_edge import PACK_KEY
from app.store_types import pack_point_id
from encoder.types import ElementKind, EncodedNote, LocalVector, matryoshka_prefix

# the remote client checks the server version in the background; there is no server in these tests
pytestmark = pytest.mark.filterwarnings("ignore:Failed to obtain server version")
DIMS = (64, 128, 256, 512)
D = DIMS[-1]


def unit(rng: np.random.Generator, n: int, dim: int = D) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)  # (n, dim)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def make_note(note_id: str, rng: np.random.Generator, n_images: int = 2, version: str = "v1",
              texts: tuple[str, ...] = ("title",)) -> EncodedNote:
    locals_ = [LocalVector(ElementKind.IMAGE, i, unit(rng, 1)[0], image_index=i, box=(0.0, 0.0, 1.0, 1.0))
               for i in range(n_images)]
    locals_ += [LocalVector(ElementKind.CROP, i, unit(rng, 1)[0], image_index=i, box=(0.0, 0.0, 0.5, 0.5))
                for i in range(n_images)]
    locals_ += [LocalVector(ElementKind.TITLE if k == 0 else ElementKind.BODY, max(k - 1, 0), unit(rng, 1)[0], text=t)
                for k, t in enumerate(texts)]
    return EncodedNote(note_id, unit(rng, 1)[0], locals_, version)


def open_store(path: Path, **overrides) -> VectorStore:
    store = open_by_settings(Settings(qdrant_path=path, **overrides))
    assert isinstance(store, EdgeStore)
    return store


@pytest.fixture
def store(tmp_path):
    s = open_store(tmp_path / "qdrant")
    s.ensure_collections("v1", DIMS)
    yield s
    s.close()


def test_ids_are_deterministic():
    assert note_point_id("n1") == note_point_id("n1") != note_point_id("n2")
    assert element_point_id("n1", ElementKind.IMAGE, 0) == element_point_id("n1", "image", 0)
    assert element_point_id("n1", ElementKind.IMAGE, 0) != element_point_id("n1", ElementKind.CROP, 0)
    namespace = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/uninote/point-ids")  # ids of stored libraries
    for note_id in ("n1", "笔记 7", "x" * 300):
        assert note_point_id(note_id) == str(uuid.uuid5(namespace, note_id))
        assert element_point_id(note_id, "crop", 12) == str(uuid.uuid5(namespace, f"{note_id}/crop/12"))
    with pytest.raises(ValueError, match="model version"):
        physical_name("notes", "bad version/1")


def test_reindex_is_idempotent(store):
    rng = np.random.default_rng(0)
    note = make_note("n1", rng)
    store.upsert_note(note, [], {"title": "hello"})
    store.upsert_note(note, [], {"title": "hello"})
    assert store.count_notes() == 1
    assert store.count_elements() == len(note.locals) == 5
    stored = store.get_note("n1")
    assert stored.payload["title"] == "hello" and stored.payload["n_images"] == 2
    assert stored.payload["model_version"] == "v1" and stored.payload["indexed_at"]


def test_delete_removes_note_and_elements(store):
    rng = np.random.default_rng(1)
    for i in range(3):
        store.upsert_note(make_note(f"n{i}", rng), [], {})
    assert store.delete_note("n1") is True
    assert store.get_note("n1") is None
    assert store.count_notes() == 2 and store.count_elements() == 10
    hits = store.search_elements(np.stack([e.vector for e in make_note("q", rng).locals]), 20)
    assert all(h.note_id != "n1" for row in hits for h in row)
    assert store.delete_note("n1") is False


def test_stale_elements_removed_when_note_shrinks(store):
    rng = np.random.default_rng(2)
    store.upsert_note(make_note("n1", rng, n_images=3, texts=("t", "b0", "b1")), [], {})
    assert store.count_elements() == 9
    store.upsert_note(make_note("n1", rng, n_images=1, texts=("t",)), [], {})
    stored = store.get_note("n1")
    assert [(e.kind, e.index) for e in stored.elements] == [
        (ElementKind.CROP, 0), (ElementKind.IMAGE, 0), (ElementKind.TITLE, 0)]
    assert store.count_elements() == 3 and stored.payload["n_images"] == 1


def test_packed_copy_is_the_engine_vectors_and_goes_with_the_note(store):
    """note_vectors reads a note's PACK point (float32 bytes): the very vectors and elements the engine holds;
    it is rewritten with the note, deleted with it, and no count, page or search sees it."""
    rng = np.random.default_rng(12)
    h = pdq_hash(Image.fromarray(skimage.data.coffee()))
    store.upsert_note(make_note("n1", rng, n_images=2), [h], {"title": "one"})
    store.upsert_note(make_note("n2", rng, n_images=0), [], {})
    shard = store._active()

    def same_as_engine(note_id: str) -> None:
        packed, engine = store.note_vectors([note_id], D)[note_id], store._engine_vectors(shard, [note_id], D)[note_id]
        assert packed.elements == engine.elements and packed.payload == engine.payload
        np.testing.assert_array_equal(packed.global_vector, engine.global_vector)
        np.testing.assert_array_equal(packed.element_matrix(), engine.element_matrix())
    same_as_engine("n1")
    same_as_engine("n2")
    assert shard.retrieve([pack_point_id("n1")], with_payload=True, with_vector=False)[0].payload[PACK_KEY]
    store.upsert_note(make_note("n1", rng, n_images=1, texts=("t",)), [], {"title": "shrunk"})
    same_as_engine("n1")
    assert [e.kind for e in store.note_vectors(["n1"], D)["n1"].elements] == [
        ElementKind.IMAGE, ElementKind.CROP, ElementKind.TITLE]
    assert store.count_notes() == 2 and store.count_elements() == 3 + 1
    assert sorted(store.note_ids()[0]) == ["n1", "n2"]
    assert store._unindexed(shard) <= store.count_notes() + store.count_elements()  # packs have no vector
    assert store.delete_note("n1") is True
    assert not shard.retrieve([pack_point_id("n1")], with_payload=False, with_vector=False)
    assert list(store.note_vectors(["n1", "n2"], D)) == ["n2"]


def test_failed_upsert_leaves_no_half_note(store):
    """A payload Qdrant cannot serialise fails the note step after the elements were written."""
    rng = np.random.default_rng(3)
    store.upsert_note(make_note("keep", rng), [], {})
    store.upsert_note(make_note("n1", rng), [], {})
    with pytest.raises(Exception, match="serialize"):
        store.upsert_note(make_note("n1", rng, n_images=3), [], {"bad": object()})
    assert store.get_note("n1") is None  # neither the old nor a partial new version
    assert store.count_notes() == 1 and store.count_elements() == 5
    assert store.get_note("keep") is not None
    with pytest.raises(Exception, match="serialize"):
        store.upsert_note(make_note("n2", rng), [], {"bad": object()})
    assert store.count_notes() == 1 and store.count_elements() == 5


def test_bad_input_is_refused_before_writing(store, tmp_path):
    rng = np.random.default_rng(4)
    note = make_note("n1", rng)
    with pytest.raises(CollectionsMissingError, match="ensure_collections"):
        store.upsert_note(make_note("n1", rng, version="v9"), [], {})
    bad = EncodedNote("n1", note.global_vector[:100], note.locals, "v1")
    with pytest.raises(ValueError, match="dim"):
        store.upsert_note(bad, [], {})
    nan = EncodedNote("n1", np.full(D, np.nan, np.float32), note.locals, "v1")
    with pytest.raises(ValueError, match="NaN"):
        store.upsert_note(nan, [], {})
    with pytest.raises(ValueError, match="PDQ"):
        store.upsert_note(note, [None, None, None], {})
    with pytest.raises(ValueError, match="prefix_dim"):
        store.ensure_collections("v2", (128, 512))
    assert store.count_notes() == 0 and store.count_elements() == 0


def test_alias_switch_keeps_search_working(store):
    rng = np.random.default_rng(5)
    old = [make_note(f"n{i}", rng, version="v1") for i in range(5)]
    new = [make_note(f"n{i}", rng, version="v2") for i in range(5)]
    for n in old:
        store.upsert_note(n, [], {"title": "old"})
    store.ensure_collections("v2", DIMS)  # the aliases stay on v1 while v2 fills
    assert store.active_version() == "v1"
    for n in new:
        store.upsert_note(n, [], {"title": "new"})
        hit = store.search_global(old[0].global_vector, 1)[0]
        assert (hit.note_id, hit.title) == ("n0", "old") and hit.score == pytest.approx(1.0, abs=1e-5)
    store.switch_alias("v2")
    assert store.active_version() == "v2" and store.versions() == ["v1", "v2"]
    hit = store.search_global(new[3].global_vector, 1)[0]
    assert (hit.note_id, hit.title) == ("n3", "new") and hit.score == pytest.approx(1.0, abs=1e-5)
    assert store.search_elements(new[3].locals[0].vector[None], 1)[0][0].note_id == "n3"
    with pytest.raises(ValueError, match="active"):
        store.drop_version("v2")
    store.drop_version("v1")
    assert store.versions() == ["v2"] and store.count_notes() == 5
    with pytest.raises(CollectionsMissingError):
        store.switch_alias("v1")


def test_second_process_gets_store_locked_error(tmp_path):
    path = tmp_path / "qdrant"
    with open_store(path) as held:
        held.ensure_collections("v1", DIMS)
        script = textwrap.dedent(f"""
            from pathlib import Path
            from app.settings import Settings
            from app.store import StoreLockedError, open_store
            try:
                open_store(Settings(qdrant_path=Path({str(path)!r})))
            except StoreLockedError as e:
                print("LOCKED:", e)
        """)
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "LOCKED:" in out.stdout, out.stderr
    assert str(path) in out.stdout and "QDRANT_URL" in out.stdout and "another process" in out.stdout
    with open_store(path) as reopened:  # released once the holder closes
        assert reopened.active_version() == "v1"


@pytest.mark.parametrize("prefetch_limit", [1000, 25])
def test_prefetch_search_equals_numpy_two_stage(tmp_path, prefetch_limit):
    """Coarse-to-fine search == numpy: top-`prefetch_limit` by the 64-d prefix, re-scored at 512-d."""
    rng = np.random.default_rng(6)
    n = 300
    centers = unit(rng, 30)  # (30, D): notes come in clusters, so neighbours are real neighbours
    g = centers[rng.integers(0, 30, n)] + 0.6 * unit(rng, n)  # (n, D)
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    with open_store(tmp_path / "q", prefetch_limit=prefetch_limit) as store:
        store.ensure_collections("v1", DIMS)
        for i in range(n):
            store.upsert_note(EncodedNote(f"n{i}", g[i], [], "v1"), [], {})
        queries = centers[:5] + 0.3 * unit(rng, 5)  # (5, D)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        prefix = matryoshka_prefix(g, 64)  # (n, 64)
        for q in queries:
            hits = store.search_global(q, limit=10, use_prefetch=True)
            candidates = np.argsort(-(prefix @ matryoshka_prefix(q, 64)))[:prefetch_limit]  # (P,)
            full = g[candidates] @ q  # (P,)
            expected = candidates[np.argsort(-full)[:10]]
            assert [h.note_id for h in hits] == [f"n{i}" for i in expected]
            np.testing.assert_allclose([h.score for h in hits], np.sort(full)[::-1][:10], atol=1e-5)
            assert hits[0].stage == "prefetch global_64 -> global_512"
            exact = store.search_global(q, limit=10, use_prefetch=False)  # one full-dim pass
            assert [h.note_id for h in exact] == [f"n{i}" for i in np.argsort(-(g @ q))[:10]]
            assert exact[0].stage == "global_512"
        excluded = store.search_global(g[7], limit=3, exclude_note_id="n7")
        assert "n7" not in [h.note_id for h in excluded]


def test_prefetch_default_depends_on_the_engine(tmp_path):
    with open_store(tmp_path / "edge") as edge:
        assert edge.prefetch_default is True
    with QdrantStore.open_local(tmp_path / "local") as local:  # Python-side re-scoring: off by default
        assert local.prefetch_default is False
    with QdrantStore(QdrantClient(location=":memory:"), StoreConfig(prefetch=True), is_local=True) as forced:
        assert forced.prefetch_default is True
    remote = QdrantStore.from_settings(Settings(qdrant_url="http://127.0.0.1:1"))
    assert remote.prefetch_default is True
    remote.close()


@pytest.mark.parametrize("use_prefetch", [False, True])
def test_search_elements_batches_and_groups(store, use_prefetch):
    rng = np.random.default_rng(7)
    notes = [make_note(f"n{i}", rng, n_images=2) for i in range(20)]
    for n in notes:
        store.upsert_note(n, [], {})
    # query = noisy copies of three known elements of three different notes
    targets = [(3, 0), (11, 2), (17, 4)]  # (note, element position)
    q = np.stack([notes[i].locals[j].vector + 0.2 * unit(rng, 1)[0] for i, j in targets])  # (3, D)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    rows = store.search_elements(q, limit_per_query=4, use_prefetch=use_prefetch)
    assert len(rows) == 3 and all(len(r) == 4 for r in rows)
    for (i, j), row in zip(targets, rows):
        want = notes[i].locals[j]
        assert (row[0].note_id, row[0].kind, row[0].index) == (f"n{i}", want.kind, want.index)
        assert row[0].text == want.text and row[0].box == want.box
        assert row[0].score == pytest.approx(float(q[targets.index((i, j))] @ want.vector), abs=1e-5)
        assert [h.score for h in row] == sorted((h.score for h in row), reverse=True)
    rows = store.search_elements(q, limit_per_query=4, exclude_note_id="n3")
    assert all(h.note_id != "n3" for h in rows[0])
    assert store.search_elements(np.zeros((0, D), np.float32), 4) == []
    with pytest.raises(ValueError, match="2-d"):
        store.search_elements(q[0], 4)


def test_search_pdq_finds_reencoded_photo(store):
    rng = np.random.default_rng(8)
    names = ["astronaut", "coffee", "rocket", "chelsea", "immunohistochemistry"]
    photos = [Image.fromarray(getattr(skimage.data, n)()).convert("RGB") for n in names]
    hashes = [pdq_hash(p) for p in photos]
    for i in range(0, 4, 2):  # note a0: photos 0,1; note a2: photos 2,3 (second image unhashed)
        store.upsert_note(make_note(f"a{i}", rng, n_images=2), [hashes[i], hashes[i + 1] if i == 0 else None], {})
    store.upsert_note(make_note("text_only", rng, n_images=0), [], {})
    query = pdq_hash(imaugs.encoding_quality(photos[2], quality=25))
    hits = store.search_pdq(query, max_distance=31)
    assert [(h.note_id, h.index) for h in hits] == [("a2", 0)]
    assert hits[0].distance <= 31 and hits[0].quality == hashes[2].quality
    assert store.search_pdq(hashes[4], max_distance=31) == []  # never stored
    assert store.search_pdq(query, 31, exclude_note_id="a2") == []
    stored = store.get_note("a0")
    assert [e.pdq for e in stored.elements if e.kind == ElementKind.IMAGE] == hashes[:2]
    with pytest.raises(ValueError, match="shape"):
        store.search_pdq(np.zeros(10), 31)


def test_note_ids_paginate(store):
    rng = np.random.default_rng(9)
    for i in range(25):
        store.upsert_note(make_note(f"n{i:02d}", rng, n_images=0), [], {})
    seen, cursor = [], None
    for _ in range(10):
        page, cursor = store.note_ids(cursor, limit=10)
        seen += page
        if cursor is None:
            break
    assert sorted(seen) == [f"n{i:02d}" for i in range(25)] and len(seen) == 25


def test_server_settings_make_a_remote_client():
    store = QdrantStore.from_settings(Settings(qdrant_url="http://127.0.0.1:1", qdrant_quantize_prefix=True))
    assert store.is_local is False and store.config.quantize_prefix is True
    params = store._vector_params(64, prefix=True)
    assert params.quantization_config is not None
    store.close()


def test_pdq_hash_type_in_hits(store):
    rng = np.random.default_rng(10)
    h = pdq_hash(Image.fromarray(skimage.data.coffee()))
    store.upsert_note(make_note("n1", rng, n_images=1), [h], {})
    hit = store.search_elements(note_vectors_of(store, "n1"), 1)[0][0]
    assert isinstance(hit.pdq, PdqHash) and hit.pdq == h


def note_vectors_of(store: VectorStore, note_id: str) -> np.ndarray:
    vectors = store.note_vectors([note_id], D)[note_id]
    image_rows = [i for i, e in enumerate(vectors.elements) if e.kind == ElementKind.IMAGE]
    return vectors.element_matrix()[image_rows]  # (n_images, D)
