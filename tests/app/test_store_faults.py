"""The embedded (Qdrant Edge) store under bad folders and faults: an old local-mode folder (one line naming
`uninote store migrate`, which copies everything and verifies), a corrupt, foreign or unreadable folder (one
clear error naming it, nothing touched), and a process SIGKILLed mid-upsert (every note whole or absent)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import qdrant_edge as qe

from app.store import (EdgeStore, QdrantStore, StoreConfig, StoreMigrationNeededError, StoreOpenError,
                       StoreWriteError)
from app.store_edge import NOTE, PACK_KEY, PACKED_ELEMENTS, PACKED_VECTORS
from app.store_migration import migrate_local_store
from app.store_types import PointWrite, note_point_id, note_points, pack_point_id
from encoder.types import ElementKind, EncodedNote, LocalVector

DIMS = (64, 128, 256, 512)
D = DIMS[-1]
REPO = Path(__file__).resolve().parents[2]


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, D)).astype(np.float32)  # (n, D)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def note(note_id: str, rng: np.random.Generator, n_elements: int, version: str = "v1") -> EncodedNote:
    vecs = unit(rng, n_elements + 1)  # (E + 1, D)
    locals_ = [LocalVector(ElementKind.CROP, i, vecs[i + 1], image_index=0, box=(0.0, 0.0, 0.5, 0.5))
               for i in range(n_elements)]
    return EncodedNote(note_id, vecs[0], locals_, version)


def fill_local_mode(path: Path, n: int = 40) -> list[EncodedNote]:
    """A store as the old embedded default (qdrant-client local mode) wrote it: two versions, v1 active."""
    rng = np.random.default_rng(0)
    notes = [note(f"n{i}", rng, i % 5) for i in range(n)]
    with QdrantStore.open_local(path) as old:
        old.ensure_collections("v1", DIMS)
        old.ensure_collections("v0", DIMS)
        for nt in notes:
            old.upsert_note(nt, [], {"title": f"t{nt.note_id}"})
        old.upsert_note(note("old", rng, 2, version="v0"), [], {})
    return notes


def test_local_mode_folder_asks_for_migrate_then_migrate_copies_everything(tmp_path):
    path = tmp_path / "qdrant"
    notes = fill_local_mode(path)
    with pytest.raises(StoreMigrationNeededError, match="uninote store migrate") as err:
        EdgeStore(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    with QdrantStore.open_local(path) as old:  # the answers to compare with
        want = [(h.note_id, round(h.score, 4)) for h in old.search_global(notes[3].global_vector, 10)]
        want_note = old.get_note("n7")

    report = migrate_local_store(path)

    assert report.counts == {"v0": (1, 2), "v1": (40, sum(i % 5 for i in range(40)))} and report.active == "v1"
    assert report.backup.is_dir() and (report.backup / "meta.json").is_file()  # the old files are kept
    with EdgeStore(path, StoreConfig(exact=True)) as edge:
        assert edge.versions() == ["v0", "v1"] and edge.active_version() == "v1"
        got = [(h.note_id, round(h.score, 4)) for h in edge.search_global(notes[3].global_vector, 10, use_prefetch=False)]
        assert got == want
        stored = edge.get_note("n7")
        assert stored.payload == want_note.payload and stored.elements == want_note.elements
    with pytest.raises(StoreOpenError, match="nothing to migrate"):
        migrate_local_store(path)


def cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "QDRANT_URL", "QDRANT_PATH"}}
    env |= {"UNINOTE_HOME": str(home), "OCR_ENABLED": "false", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)


def test_cli_names_the_migrate_command_and_runs_it(tmp_path):
    home = tmp_path / "home"
    fill_local_mode(home / "qdrant", n=6)
    refused = cli(home, "delete", "n1")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    lines = [line for line in refused.stderr.splitlines() if line.strip() and not line.startswith("WARNING")]
    assert len(lines) == 1 and "uninote store migrate" in lines[0] and str(home / "qdrant") in lines[0], lines
    done = cli(home, "store", "migrate")
    assert done.returncode == 0, done.stderr
    assert "version v1: 6 notes, 10 elements copied and verified" in done.stdout
    with EdgeStore(home / "qdrant") as edge:
        assert edge.count_notes() == 6 and edge.get_note("n1") is not None


def written_store(path: Path) -> None:
    with EdgeStore(path) as store:
        store.ensure_collections("v1", DIMS)
        rng = np.random.default_rng(1)
        for i in range(5):
            store.upsert_note(note(f"n{i}", rng, 2), [], {})


def write_first_edge_layout(path: Path, notes: list[EncodedNote]) -> None:
    """A folder as the first Edge layout wrote it: a shard with Edge's default vector storage (every vector
    in RAM with its own HNSW graph), each note point carrying hex float32 copies of its full-dim vectors and
    its elements' payloads."""
    with EdgeStore(path) as store:
        def first_config(prefix: int, full: int) -> qe.EdgeConfig:
            cos = qe.Distance.Cosine
            vectors = {f"{k}_{d}": qe.EdgeVectorParams(size=d, distance=cos) for k in ("global", "local")
                       for d in (prefix, full)}
            vectors["pdq"] = qe.EdgeVectorParams(size=256, distance=qe.Distance.Manhattan,
                                                 datatype=qe.VectorStorageDatatype.Uint8)
            return qe.EdgeConfig(vectors=vectors)
        store._edge_config = first_config
        store.ensure_collections("v1", DIMS)
        for nt in notes:
            write = note_points(nt, [], {"title": f"t{nt.note_id}"}, DIMS[0])
            rows = [write.note.vectors[f"global_{D}"]] + [e.vectors[f"local_{D}"] for e in write.elements]
            packed = {PACKED_VECTORS: np.asarray(rows, dtype=np.float32).tobytes().hex(),
                      PACKED_ELEMENTS: [{k: v for k, v in e.payload.items() if k != "note_id"}
                                        for e in write.elements]}
            store._write(store._shards["v1"], [PointWrite(write.note.id, write.note.vectors,
                                                          write.note.payload | packed)], NOTE, write.elements,
                         pack=False)


def test_a_store_of_the_first_edge_layout_still_reads_and_sheds_its_copies_on_rewrite(tmp_path):
    rng = np.random.default_rng(4)
    notes = [note(f"n{i}", rng, i % 4) for i in range(12)]
    write_first_edge_layout(tmp_path / "old", notes)
    with EdgeStore(tmp_path / "new") as new:
        new.ensure_collections("v1", DIMS)
        for nt in notes:
            new.upsert_note(nt, [], {"title": f"t{nt.note_id}"})
        with EdgeStore(tmp_path / "old") as old:
            assert (old.count_notes(), old.count_elements()) == (new.count_notes(), new.count_elements()) == (12, 18)
            for nt in notes:
                a, b = old.get_note(nt.note_id), new.get_note(nt.note_id)
                assert a.elements == b.elements and PACKED_VECTORS not in a.payload and PACKED_ELEMENTS not in a.payload
            ids = [nt.note_id for nt in notes]
            va, vb = old.note_vectors(ids, D), new.note_vectors(ids, D)
            for nid in ids:
                assert va[nid].elements == vb[nid].elements and PACKED_VECTORS not in va[nid].payload
                np.testing.assert_array_equal(va[nid].element_matrix(), vb[nid].element_matrix())
                np.testing.assert_array_equal(va[nid].global_vector, vb[nid].global_vector)
            q = notes[3].global_vector
            hits = old.search_global(q, 5, use_prefetch=True)
            assert [h.note_id for h in hits] == [h.note_id for h in new.search_global(q, 5, use_prefetch=True)]
            assert hits[0].note_id == "n3" and PACKED_VECTORS not in hits[0].payload
            old.upsert_note(notes[3], [], {"title": "again"})  # written again: the copies are gone
            raw = old._shards["v1"].retrieve([note_point_id(notes[3].note_id)], with_payload=True, with_vector=False)[0]
            assert PACKED_VECTORS not in raw.payload and raw.payload["title"] == "again"
            assert old.count_elements() == 18 and len(old.get_note("n3").elements) == 3


def test_a_store_without_packed_copies_still_reads_and_packs_a_note_on_rewrite(tmp_path):
    """The second Edge layout (before PACK points): notes read from the engine's vectors, the same answers."""
    rng = np.random.default_rng(5)
    notes = [note(f"n{i}", rng, i % 4) for i in range(10)]
    with EdgeStore(tmp_path / "new") as new, EdgeStore(tmp_path / "old") as old:
        for store in (new, old):
            store.ensure_collections("v1", DIMS)
        for nt in notes:
            new.upsert_note(nt, [], {"title": f"t{nt.note_id}"})
            write = note_points(nt, [], {"title": f"t{nt.note_id}"}, DIMS[0])
            old._write(old._shards["v1"], [write.note], NOTE, write.elements, pack=False)
        ids = [nt.note_id for nt in notes] + ["missing"]
        shard = old._shards["v1"]
        assert not shard.retrieve([pack_point_id(n) for n in ids], with_payload=False, with_vector=False)
        va, vb = old.note_vectors(ids, D), new.note_vectors(ids, D)
        assert sorted(va) == sorted(vb) == sorted(ids[:-1])
        for nid in ids[:-1]:
            assert va[nid].elements == vb[nid].elements and without_time(va[nid].payload) == without_time(
                vb[nid].payload)
            np.testing.assert_array_equal(va[nid].element_matrix(), vb[nid].element_matrix())
            np.testing.assert_array_equal(va[nid].global_vector, vb[nid].global_vector)
        old.upsert_note(notes[3], [], {"title": "again"})  # written again: it gains its pack
        assert shard.retrieve([pack_point_id("n3")], with_payload=True, with_vector=False)[0].payload[PACK_KEY]
        assert old.note_vectors(["n3"], D)["n3"].payload["title"] == "again"
        assert (old.count_notes(), old.count_elements()) == (new.count_notes(), new.count_elements())


def without_time(payload: dict) -> dict:
    return {k: v for k, v in payload.items() if k != "indexed_at"}


@pytest.mark.parametrize("damage", ["manifest", "shard config", "segment state", "wal"])
def test_corrupt_folder_is_one_clear_error_and_nothing_is_lost(tmp_path, damage):
    path = tmp_path / "qdrant"
    written_store(path)
    target = {
        "manifest": path / "uninote-edge.json",
        "shard config": path / "shards" / "v1" / "edge_config.json",
        "segment state": next(path.rglob("segment.json")),
        "wal": next((path / "shards" / "v1" / "wal").glob("open-*")),
    }[damage]
    original = target.read_bytes()
    target.write_bytes(b"\x00not what was written{" * 8)
    with pytest.raises(StoreOpenError) as err:
        EdgeStore(path)
    message = str(err.value)
    assert str(path) in message and ("corrupt" in message or "not a" in message), message
    assert "\n" not in message
    target.write_bytes(original)  # the damaged file restored from a backup: every note is still there
    with EdgeStore(path) as store:
        assert store.count_notes() == 5 and store.count_elements() == 10
        assert len(store.get_note("n3").elements) == 2


def test_foreign_folder_is_refused_and_untouched(tmp_path):
    path = tmp_path / "photos"
    path.mkdir()
    (path / "holiday.jpg").write_bytes(b"jpeg bytes")
    with pytest.raises(StoreOpenError, match="not a UniNote store") as err:
        EdgeStore(path)
    assert str(path) in str(err.value)
    assert sorted(p.name for p in path.iterdir()) == [".uninote-edge.lock", "holiday.jpg"]
    assert (path / "holiday.jpg").read_bytes() == b"jpeg bytes"


def deny(folder: Path) -> None:
    """Make `folder` unwritable even for root (the tests may run as root: chattr +i, else chmod)."""
    if os.geteuid() == 0:
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)]).returncode != 0:
            pytest.skip("running as root on a filesystem without chattr +i: no way to deny a write")
    else:
        folder.chmod(0o555)


def allow(folder: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    else:
        folder.chmod(0o755)


def test_permission_error_on_a_new_folder_names_it(tmp_path):
    parent = tmp_path / "readonly"
    parent.mkdir()
    deny(parent)
    try:
        with pytest.raises(StoreOpenError, match="no permission") as err:
            EdgeStore(parent / "qdrant")
    finally:
        allow(parent)
    assert str(parent / "qdrant") in str(err.value) and "\n" not in str(err.value)


def test_permission_error_on_a_stored_folder_names_it_and_loses_nothing(tmp_path):
    path = tmp_path / "qdrant"
    written_store(path)
    wal = path / "shards" / "v1" / "wal"
    deny(wal)
    try:
        with pytest.raises((StoreOpenError, StoreWriteError), match="no permission") as err:
            with EdgeStore(path) as store:  # the write-ahead log cannot be rolled over at the flush
                store.upsert_note(note("n9", np.random.default_rng(3), 3), [], {})
    finally:
        allow(wal)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    with EdgeStore(path) as store:  # access given back: every note is still there, the new one whole or absent
        assert all(len(store.get_note(f"n{i}").elements) == 2 for i in range(5))
        n9 = store.get_note("n9")
        assert n9 is None or len(n9.elements) == 3
        assert store.count_elements() == 10 + (3 if n9 else 0)


WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    import numpy as np
    from app.store import EdgeStore
    from encoder.types import ElementKind, EncodedNote, LocalVector
    store = EdgeStore(Path(sys.argv[1]))
    store.ensure_collections("v1", (64, 128, 256, 512))
    rng = np.random.default_rng(int(sys.argv[2]))
    i = 0
    while True:
        k = int(rng.integers(0, 12))  # notes grow and shrink: re-indexing drops elements too
        v = rng.standard_normal((k + 1, 512)).astype(np.float32)
        locals_ = [LocalVector(ElementKind.CROP, j, v[j + 1], image_index=0) for j in range(k)]
        store.upsert_note(EncodedNote(f"n{i % 30}", v[0], locals_, "v1"), [], {"n_elements": k, "round": i})
        print(i, flush=True)
        i += 1
""")


def test_sigkill_mid_upsert_leaves_every_note_whole_or_absent(tmp_path):
    path = tmp_path / "qdrant"
    rng = np.random.default_rng(2)
    for attempt in range(3):
        child = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(attempt)], cwd=REPO,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        stop_after = 60 + int(rng.integers(0, 60))
        for line in child.stdout:
            if int(line) >= stop_after:
                break
        os.kill(child.pid, signal.SIGKILL)  # while it goes on writing
        child.wait(timeout=60)
        with EdgeStore(path, StoreConfig(exact=True)) as store:
            ids, _ = store.note_ids(limit=1000)
            assert len(ids) == store.count_notes() >= 29  # each of the 30 ids was written before the kill
            keys = {}
            for nid in ids:
                stored = store.get_note(nid)
                keys[nid] = {(e.kind.value, e.index) for e in stored.elements}
                assert len(stored.elements) == stored.payload["n_elements"] == len(stored.payload["element_keys"])
                assert sorted(f"{k}/{i}" for k, i in keys[nid]) == sorted(stored.payload["element_keys"])
            assert store.count_elements() == sum(len(k) for k in keys.values())  # no element without its note
            query = unit(rng, 3)
            for row in store.search_elements(query, 1000, use_prefetch=False):
                assert len(row) == store.count_elements()
                assert all((h.kind.value, h.index) in keys[h.note_id] for h in row)
    shutil.rmtree(path)
