"""The Qdrant Edge engine of the store contract (app/store_types.py): the embedded default at `QDRANT_PATH`.

Qdrant Edge (`qdrant-edge-py`, Apache-2.0) is Qdrant's search engine as an in-process library: HNSW, payload
indexes, the Query API with prefetch, batch queries, a write-ahead log. It has shards, not collections or
aliases, so the folder holds (docs/architecture.md):

    QDRANT_PATH/uninote-edge.json   manifest {"format": "uninote-edge/1", "active": <version>}, replaced
                                    atomically (os.replace) by `switch_alias`
    QDRANT_PATH/shards/<version>/   one Edge shard per model version, holding the note points AND the element
                                    points of that version (the note's vectors `global_*`, an element's
                                    `local_*` and `pdq`; payload `_record` = "note" | "element"), and one
                                    vector-less "pack" point per note (PACK below)
    QDRANT_PATH/.uninote-edge.lock  fcntl lock: one process per folder (several need a Qdrant server)

Notes and elements share a shard so that a note and all its elements are ONE upsert operation, one WAL
record: a process killed mid-upsert leaves the note whole (old or new) or absent. A query that names a vector
(`local_512`) only sees points that have it, so element searches never meet note points. The elements a
re-indexed note no longer has are overwritten in that same operation by vector-less tombstones (invisible to
every search, count and read) and deleted by a second one, so a crash in between leaves nothing visible.

Search runs inside the engine: HNSW (or exact, StoreConfig.exact), the coarse-to-fine prefix -> full-dim
re-score as one query with a prefetch (MRL, Kusupati et al. 2022; paper §3.3), exclude-self and `only` as
payload-indexed filters, all query elements of a note in one `query_batch`. Edge builds HNSW only when asked
(`EdgeShard.optimize`), so the store optimises once `StoreConfig.optimize_points` points are unindexed.
Only the prefix vectors have an HNSW graph and live in RAM; the full-dim vectors, which only re-score the
prefetched candidates, are memory-mapped from disk without a graph (`_edge_config`). The candidates' vectors
for the exact re-score of `check` are read from each note's PACK point, a vector-less copy written in the
note's upsert (`note_vectors`: one batch retrieve; Edge's binding would make ~E x D Python floats a note);
`check`'s element searches read only the payload fields a hit ranks by (`search_elements(details=False)`).
"""

from __future__ import annotations

import base64
import errno
import fcntl
import json
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import qdrant_edge as qe

from app.image_hashes import PDQ_BITS, PdqHash
from app.settings import Settings
from app.store_types import (HIT_FIELDS, PDQ_HIT_FIELDS, PDQ_VECTOR, CollectionsMissingError, ElementHit, GlobalHit,
                             NoteVectors, PayloadError, PdqHit, PointWrite, StoreConfig, StoredElement, StoredNote,
                             StoreLockedError, StoreOpenError, StoreWriteError, check_limit, check_vectors,
                             element_hit, element_ids_of, note_point_id, note_points, pack_point_id, pdq_bits,
                             pdq_hits, physical_name, prefix_and_full, stage_name, stored_element)
from encoder.types import EncodedNote, matryoshka_prefix

FORMAT = "uninote-edge/1"
MANIFEST = "uninote-edge.json"
LOCK_FILE = ".uninote-edge.lock"
SHARDS = "shards"
RECORD = "_record"  # payload key: "note" or "element"
# Written by the first Edge layout: the note point carried hex copies of its full-dim vectors and its
# elements' payloads. Stores of that layout still read (the engine holds the same vectors and payloads;
# these keys stay hidden and are dropped when the note is written again).
PACKED_VECTORS, PACKED_ELEMENTS = "_vectors", "_elements"
HIDDEN = (RECORD, PACKED_VECTORS, PACKED_ELEMENTS)
NOTE, ELEMENT, STALE = "note", "element", "stale"  # STALE: a dropped element, emptied in the note's upsert
# PACK: a note's packed copy, one vector-less point (pack_point_id) written in the note's upsert; payload
# {"note_id", PACK_KEY: {"dim": D, "f32": base64 of the little-endian float32 rows (E + 1, D) = the global
# vector then the elements' in `element_keys` order, "elements": the elements' payloads without note_id}}.
# `note_vectors` reads it instead of ~E x D Python floats; notes written before it existed have none and
# are read from the engine's vectors (they gain one when written again).
PACK, PACK_KEY = "pack", "_pack"
INDEXED_FIELDS = ("note_id", "kind", RECORD)


class StoreMigrationNeededError(StoreOpenError):
    """The folder holds a store written by qdrant-client's local mode (before Qdrant Edge)."""


def is_local_mode_folder(path: Path) -> bool:
    """True when `path` holds qdrant-client local-mode files (meta.json / collection/) and no Edge manifest."""
    return not (path / MANIFEST).exists() and ((path / "meta.json").is_file() or (path / "collection").is_dir())


def _field(key: str, value: str) -> qe.FieldCondition:
    return qe.FieldCondition(key=key, match=qe.MatchValue(value))


def _search_filter(record: str, exclude_note_id: str | None, only: Sequence[str] | None) -> qe.Filter | None:
    must: list[Any] = []
    if only is not None:
        must.append(qe.FieldCondition(key="note_id", match=qe.MatchAny(list(only))))
    must_not = [] if exclude_note_id is None else [_field("note_id", exclude_note_id)]
    if not must and not must_not:
        return None
    return qe.Filter(must=must or None, must_not=must_not or None)


def _public(payload: dict[str, Any] | None) -> dict[str, Any]:
    """The payload as the contract shows it (without the engine's own keys)."""
    return {k: v for k, v in (payload or {}).items() if k not in HIDDEN}


def _light() -> qe.PayloadSelector:
    """A note payload without the first layout's packed copies (PACKED_VECTORS, PACKED_ELEMENTS)."""
    return qe.PayloadSelector.Exclude([PACKED_VECTORS, PACKED_ELEMENTS])


def _pack(note: PointWrite, elements: Sequence[PointWrite]) -> PointWrite | None:
    """The PACK point of a note (its full-dim vectors as float32 bytes, its elements' payloads), or None when
    an element of its `element_keys` is missing from `elements` (then it is read from the engine)."""
    dims = [int(name.rsplit("_", 1)[1]) for name in note.vectors if name.startswith("global_")]
    if not dims:
        return None
    dim = max(dims)
    by_key = {f"{e.payload.get('kind')}/{e.payload.get('index')}": e for e in elements}
    rows, payloads = [note.vectors[f"global_{dim}"]], []
    for key in note.payload.get("element_keys") or []:
        element = by_key.get(key)
        if element is None or f"local_{dim}" not in element.vectors:
            return None
        rows.append(element.vectors[f"local_{dim}"])
        payloads.append({k: v for k, v in element.payload.items() if k not in ("note_id", RECORD)})
    data = np.asarray(rows, dtype="<f4").tobytes()  # (E + 1, D) float32
    note_id = note.payload["note_id"]
    return PointWrite(pack_point_id(note_id), {}, {"note_id": note_id, PACK_KEY: {
        "dim": dim, "f32": base64.b64encode(data).decode("ascii"), "elements": payloads}})


def _unpack(note_payload: dict[str, Any], packed: dict[str, Any], dim: int) -> NoteVectors | None:
    """NoteVectors from a PACK payload, or None when it holds another dim or does not fit the note."""
    if packed.get("dim") != dim:
        return None
    rows = np.frombuffer(base64.b64decode(packed["f32"]), dtype="<f4").astype(np.float32)  # ((E + 1) * D,)
    elements = packed.get("elements") or []
    if rows.shape[0] != (len(elements) + 1) * dim:
        return None
    rows = rows.reshape(len(elements) + 1, dim)  # (E + 1, D)
    return NoteVectors(rows[0], _public(note_payload), [stored_element(p) for p in elements], list(rows[1:]))


def _matrix(records: Sequence[Any], name: str, dim: int) -> np.ndarray:
    """(len(records), dim) float32 of each record's vector `name` (Edge returns Python lists of floats)."""
    if not records:
        return np.zeros((0, dim), dtype=np.float32)
    return np.array([r.vector[name] for r in records], dtype=np.float32)  # (n, dim)


class EdgeStore:
    """Notes and local elements in a Qdrant Edge folder (one process); see the module docstring.

    Writes go to the shard of `EncodedNote.model_version`; reads and searches go to the active version's.
    Raises StoreLockedError (another process holds the folder), StoreMigrationNeededError (an old local-mode
    folder) or StoreOpenError (corrupt, foreign or unreadable folder), each naming the folder.
    """

    engine = "edge"
    is_local = True

    def __init__(self, path: Path, config: StoreConfig | None = None):
        self.path = Path(path)
        self.config = config or StoreConfig()
        self.prefetch_default = self.config.prefetch if self.config.prefetch is not None else True
        self._shards: dict[str, qe.EdgeShard] = {}
        self._pending: dict[str, int] = {}
        self._lock_fd: int | None = None
        self._active_version: str | None = None
        try:
            self._open()
        except BaseException:
            try:
                self.close()
            except StoreWriteError:
                pass
            raise

    # ---- opening -------------------------------------------------------------------------------------
    @classmethod
    def from_settings(cls, settings: Settings) -> "EdgeStore":
        """The Edge store at `settings.resolved_qdrant_path` (errors as the class docstring says)."""
        return cls(settings.resolved_qdrant_path, StoreConfig.from_settings(settings))

    def _open(self) -> None:
        path = self.path
        if is_local_mode_folder(path):
            raise StoreMigrationNeededError(
                f"the store folder {path} was written by the old qdrant-client local mode; run "
                f"`uninote store migrate` once to copy it into Qdrant Edge (it verifies the counts and keeps the "
                f"old files beside it)")
        try:
            path.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        except PermissionError as err:
            raise StoreOpenError(f"no permission to open the store folder {path} ({err.strerror}): give this "
                                 f"user read/write access to it, or set QDRANT_PATH to another folder") from err
        except OSError as err:
            raise StoreOpenError(f"cannot open the store folder {path}: {err.strerror or err}") from err
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            os.close(self._lock_fd)
            self._lock_fd = None
            raise StoreLockedError(
                f"the embedded store folder {path} is already open in another process (Qdrant Edge allows one "
                f"process per folder). Stop the other process (a CLI command, a worker, the dashboard), or run "
                f"a Qdrant server and set QDRANT_URL so that several processes can share it.") from err
        manifest = self._read_manifest()
        self._active_version = None if manifest is None else manifest.get("active")
        if manifest is None:
            foreign = [p.name for p in path.iterdir() if p.name not in (LOCK_FILE, SHARDS)]
            if foreign:
                raise StoreOpenError(
                    f"the store folder {path} holds files that are not a UniNote store ({', '.join(sorted(foreign)[:3])}"
                    f"); set QDRANT_PATH to an empty or UniNote folder")
            self._write_manifest(None)
        shards = path / SHARDS
        try:
            shards.mkdir(exist_ok=True)
            for tmp in shards.glob(".tmp-*"):  # a version whose creation was interrupted
                shutil.rmtree(tmp, ignore_errors=True)
            names = sorted(p.name for p in shards.iterdir() if p.is_dir() and not p.name.startswith("."))
        except PermissionError as err:
            raise StoreOpenError(f"no permission to read the store folder {shards} ({err.strerror})") from err
        for version in names:
            self._shards[version] = self._load_shard(shards / version)
            self._pending[version] = self._unindexed(self._shards[version])

    def _load_shard(self, folder: Path) -> qe.EdgeShard:
        if not os.access(folder, os.R_OK | os.W_OK | os.X_OK):
            raise StoreOpenError(f"no permission to open the store folder {folder}: give this user read/write "
                                 f"access to it")
        try:
            return qe.EdgeShard.load(str(folder))
        except Exception as err:  # the engine raises a plain Exception with its reason
            reason = str(err)
            if "ermission denied" in reason or "not permitted" in reason:
                raise StoreOpenError(f"no permission to open the store folder {folder} ({reason[:200]}): give this "
                                     f"user read/write access to it") from err
            raise StoreOpenError(
                f"the store folder {folder} is corrupt or not a Qdrant Edge shard ({str(err)[:200]}); restore it "
                f"from a backup, or move it away and index the notes again") from err

    def _read_manifest(self) -> dict[str, Any] | None:
        file = self.path / MANIFEST
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except PermissionError as err:
            raise StoreOpenError(f"no permission to read {file} ({err.strerror})") from err
        except (OSError, ValueError) as err:
            raise StoreOpenError(f"the store manifest {file} is corrupt ({err}); restore it from a backup") from err
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise StoreOpenError(f"the store manifest {file} is not a {FORMAT} manifest; set QDRANT_PATH to a "
                                 f"UniNote store folder")
        return data

    def _write_manifest(self, active: str | None) -> None:
        """Write the manifest atomically: a temporary file, fsync, os.replace."""
        file = self.path / MANIFEST
        tmp = file.with_name(f".{MANIFEST}.{uuid.uuid4().hex}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"format": FORMAT, "active": active}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, file)
        dir_fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self._active_version = active

    @staticmethod
    def _unindexed(shard: qe.EdgeShard) -> int:
        info = shard.info()  # indexed_vectors_count counts vectors: about 2 per point (prefix + full)
        packs = shard.count(qe.CountRequest(exact=True, filter=qe.Filter(must=[_field(RECORD, PACK)])))
        return max(0, info.points_count - packs - info.indexed_vectors_count // 2)  # a PACK point has no vector

    def _write_error(self, err: Exception, doing: str) -> StoreWriteError:
        """The engine's plain Exception as one line naming the folder and the cause."""
        reason = str(err).replace("\n", " ")[:300]
        if any(s in reason for s in ("ermission denied", "not permitted", "PermissionDenied")):
            return StoreWriteError(f"no permission to write the store folder {self.path} while {doing} ({reason}); "
                                   f"give this user read/write access to it")
        if any(s in reason for s in ("No space left", "StorageFull", "os error 28")):
            return StoreWriteError(f"the disk of the store folder {self.path} is full while {doing}; free space "
                                   f"and retry (nothing stored was lost)")
        return StoreWriteError(f"writing the store folder {self.path} failed while {doing}: {reason}")

    @contextmanager
    def _writing(self, doing: str) -> Iterator[None]:
        try:
            yield
        except (ValueError, TypeError, StoreWriteError):
            raise
        except Exception as err:  # the engine raises a plain Exception with its reason
            raise self._write_error(err, doing) from err

    def close(self) -> None:
        """Flush and close the shards, release the folder lock. Safe to call twice. Raises StoreWriteError
        when a flush fails (everything is closed and the lock released all the same; the WAL keeps the
        writes that were acknowledged)."""
        failure: StoreWriteError | None = None
        for shard in self._shards.values():
            try:
                shard.flush()
            except Exception as err:
                failure = failure or self._write_error(err, "flushing it")
            finally:
                shard.close()
        self._shards.clear()
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None
        if failure is not None:
            raise failure

    def __enter__(self) -> "EdgeStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- versions (Edge has no aliases: the manifest names the active one) -------------------------------
    def _edge_config(self, prefix: int, full: int) -> qe.EdgeConfig:
        """The vectors of a new shard. The prefix vectors (`*_<prefix>`) are what HNSW searches: in RAM,
        with a graph of StoreConfig.hnsw_m / hnsw_ef_construct (int8 with rescoring if quantize_prefix).
        The full-dim vectors (`*_<D>`) only re-score the prefetched candidates: memory-mapped from disk
        (Memory.Cold: not read at open, the page cache holds what queries touch) and without a graph (m=0:
        a query on them alone is a full scan, exact). `pdq`: uint8 0/1 bits, Manhattan, its own graph."""
        quant = qe.ScalarQuantizationConfig(qe.ScalarType.Int8) if self.config.quantize_prefix else None
        cos = qe.Distance.Cosine
        graph = qe.HnswIndexConfig(m=self.config.hnsw_m, ef_construct=self.config.hnsw_ef_construct,
                                   full_scan_threshold=10_000)
        no_graph = qe.HnswIndexConfig(m=0, ef_construct=self.config.hnsw_ef_construct, full_scan_threshold=10_000)
        vectors = {}
        for kind in ("global", "local"):
            vectors[f"{kind}_{prefix}"] = qe.EdgeVectorParams(size=prefix, distance=cos, quantization_config=quant,
                                                              hnsw_config=graph)
            vectors[f"{kind}_{full}"] = qe.EdgeVectorParams(size=full, distance=cos, memory=qe.Memory.Cold,
                                                            hnsw_config=no_graph)
        vectors[PDQ_VECTOR] = qe.EdgeVectorParams(size=PDQ_BITS, distance=qe.Distance.Manhattan,
                                                  datatype=qe.VectorStorageDatatype.Uint8)
        optimizers = None
        if self.config.indexing_threshold_kb is not None:
            optimizers = qe.EdgeOptimizersConfig(indexing_threshold=self.config.indexing_threshold_kb)
        return qe.EdgeConfig(vectors=vectors, optimizers=optimizers)

    def ensure_collections(self, version: str, dims: Sequence[int]) -> None:
        """Create the shard of `version` if missing (dims: the encoder's Matryoshka dims, ascending, last = D).
        When no version is active yet, make this one active. Raises ValueError for a bad version or dims."""
        prefix, full = prefix_and_full(dims, self.config.prefix_dim)
        self.create_version(version, prefix, full)
        if self.active_version() is None:
            self.switch_alias(version)

    def create_version(self, version: str, prefix: int, full: int) -> None:
        """The shard of `version` with vectors `*_<prefix>`, `*_<full>` and `pdq` (no-op if it exists).
        Built in a temporary folder and renamed into place, so a crash never leaves half a shard."""
        physical_name("notes", version)  # validates the version name
        if version in self._shards:
            return
        final = self.path / SHARDS / version
        tmp = self.path / SHARDS / f".tmp-{version}-{uuid.uuid4().hex[:8]}"
        with self._writing(f"creating version {version!r}"):
            shard = qe.EdgeShard.create(str(tmp), self._edge_config(prefix, full))
            try:
                for name in INDEXED_FIELDS:
                    shard.update(qe.UpdateOperation.create_field_index(name, qe.PayloadSchemaType.Keyword))
                shard.flush()
            finally:
                shard.close()
            os.replace(tmp, final)
        self._shards[version] = self._load_shard(final)
        self._pending[version] = 0

    def versions(self) -> list[str]:
        """Model versions that have a shard (sorted)."""
        return sorted(self._shards)

    def active_version(self) -> str | None:
        """The version searches go to (the manifest's `active`), or None before the first index. Read once:
        only this process (it holds the folder lock) writes the manifest."""
        return self._active_version

    def switch_alias(self, version: str) -> None:
        """Make `version` active: one atomic manifest replace. Raises CollectionsMissingError."""
        if version not in self._shards:
            raise CollectionsMissingError(f"no collections for model version {version!r}: index it first")
        self._write_manifest(version)

    def drop_version(self, version: str) -> None:
        """Delete a version's shard. Raises ValueError for the active version."""
        if version == self.active_version():
            raise ValueError(f"version {version!r} is active: switch the aliases first")
        shard = self._shards.pop(version, None)
        if shard is not None:
            shard.close()
        shutil.rmtree(self.path / SHARDS / version, ignore_errors=True)

    def _require(self, version: str) -> qe.EdgeShard:
        shard = self._shards.get(version)
        if shard is None:
            raise CollectionsMissingError(
                f"no collections for model version {version!r}: call ensure_collections(version, dims) first")
        return shard

    def _active(self) -> qe.EdgeShard | None:
        version = self.active_version()
        return None if version is None else self._shards.get(version)

    # ---- writes --------------------------------------------------------------------------------------
    def upsert_note(self, encoded: EncodedNote, pdq: Sequence[PdqHash | None], payload: dict[str, Any]) -> None:
        """Write one note, its elements and tombstones of its dropped elements as ONE upsert operation.

        pdq: one entry per image of the note, by image index (None = no hash), or empty.
        payload: extra JSON-able note payload (author, created_at, ...); the store's own keys win.
        Into the shard of `encoded.model_version` (CollectionsMissingError if absent).
        All-or-nothing: a failed write removes the note from that version and re-raises; a killed process
        leaves the note whole (old or new) or absent. Raises ValueError for vectors of the wrong shape,
        NaN, a pdq list longer than the images; PayloadError (a ValueError) for a payload that is not JSON.
        """
        shard = self._require(encoded.model_version)
        note_id = encoded.note_id
        try:
            write = note_points(encoded, pdq, payload, self.config.prefix_dim)
        except PayloadError:
            self._delete_in(shard, note_id, swallow=True)
            raise
        try:
            with self._writing(f"writing note {note_id!r}"):
                old_ids = set(self._element_ids(shard, [note_id]).get(note_id, []))
                stale = sorted(old_ids - {p.id for p in write.elements})
                tombstones = [PointWrite(pid, {}, {"note_id": note_id}) for pid in stale]
                self._write(shard, [write.note], NOTE, write.elements, tombstones)
                if stale:  # clean-up only: a tombstone has no vector, so no search, count or read sees it
                    shard.update(qe.UpdateOperation.delete_points(stale))
        except BaseException:
            self._delete_in(shard, note_id, swallow=True)
            raise
        self._after_write(encoded.model_version, 1 + len(write.elements))

    def _write(self, shard: qe.EdgeShard, notes: Sequence[PointWrite], record: str,
               elements: Sequence[PointWrite] = (), tombstones: Iterable[PointWrite] = (), pack: bool = True) -> None:
        """One upsert operation (one WAL record: applied whole or not at all after a crash). One note with
        `pack`: its PACK point too (when its elements are all there), or the removal of an older one."""
        points = [qe.Point(p.id, p.vectors, p.payload | {RECORD: record}) for p in notes]
        points += [qe.Point(p.id, p.vectors, p.payload | {RECORD: ELEMENT}) for p in elements]
        points += [qe.Point(p.id, p.vectors, p.payload | {RECORD: STALE}) for p in tombstones]
        if pack and record == NOTE and len(notes) == 1:
            packed = _pack(notes[0], elements)
            if packed is None:  # an empty pack is invisible, like a tombstone: note_vectors reads the engine
                packed = PointWrite(pack_point_id(notes[0].payload["note_id"]), {},
                                    {"note_id": notes[0].payload["note_id"]})
            points.append(qe.Point(packed.id, packed.vectors, packed.payload | {RECORD: PACK}))
        if points:
            shard.update(qe.UpdateOperation.upsert_points(points))

    def write_note_points(self, version: str, note: PointWrite, elements: Sequence[PointWrite]) -> None:
        """A note's raw points (as another store holds them) into a version, one operation; what
        `uninote store migrate` writes."""
        with self._writing(f"writing note {note.payload.get('note_id')!r} into version {version!r}"):
            self._write(self._require(version), [PointWrite(note.id, note.vectors, _public(note.payload))], NOTE,
                        elements)
        self._after_write(version, 1 + len(elements))

    def _after_write(self, version: str, n_points: int) -> None:
        self._pending[version] = self._pending.get(version, 0) + n_points
        if self._pending[version] >= self.config.optimize_points:
            self.optimize(version)

    def optimize(self, version: str | None = None) -> None:
        """Build the HNSW index of the written points now (blocking; one version, default all)."""
        for name in [version] if version else list(self._shards):
            with self._writing(f"building the HNSW index of version {name!r}"):
                self._shards[name].optimize()
            self._pending[name] = self._unindexed(self._shards[name])

    def delete_note(self, note_id: str) -> bool:
        """Remove the note and its elements from every version (one filter delete each). Returns whether it
        existed."""
        existed = False
        for shard in self._shards.values():
            existed |= bool(shard.retrieve([note_point_id(note_id)], with_payload=False, with_vector=False))
            with self._writing(f"deleting note {note_id!r}"):
                self._delete_in(shard, note_id, swallow=False)
        return existed

    @staticmethod
    def _delete_in(shard: qe.EdgeShard, note_id: str, swallow: bool) -> None:
        try:
            shard.update(qe.UpdateOperation.delete_points_by_filter(qe.Filter(must=[_field("note_id", note_id)])))
        except Exception:
            if not swallow:
                raise

    def set_note_payload(self, note_id: str, values: dict[str, Any]) -> bool:
        """Merge `values` into the stored note's payload (active version). Returns whether it exists."""
        shard = self._active()
        pid = note_point_id(note_id)
        if shard is None or not shard.retrieve([pid], with_payload=False, with_vector=False):
            return False
        with self._writing(f"updating note {note_id!r}"):
            shard.update(qe.UpdateOperation.set_payload([pid], {k: v for k, v in values.items() if k not in HIDDEN}))
        return True

    # ---- reads ---------------------------------------------------------------------------------------
    @staticmethod
    def _element_ids(shard: qe.EdgeShard, note_ids: Sequence[str]) -> dict[str, list[str]]:
        """note id -> element point ids, from the stored notes' `element_keys` (one retrieve)."""
        found = shard.retrieve([note_point_id(n) for n in note_ids], with_payload=["note_id", "element_keys"],
                               with_vector=False)
        return {r.payload["note_id"]: element_ids_of(r.payload["note_id"], r.payload.get("element_keys") or [])
                for r in found}

    def get_note(self, note_id: str) -> StoredNote | None:
        """The stored note (active version) with its elements sorted by (kind, index), or None (two
        retrieves: the note point, then its elements by their ids)."""
        shard = self._active()
        if shard is None:
            return None
        found = shard.retrieve([note_point_id(note_id)], with_payload=_light(), with_vector=False)
        if not found:
            return None
        ids = element_ids_of(note_id, found[0].payload.get("element_keys") or [])
        records = shard.retrieve(ids, with_payload=True, with_vector=False) if ids else []
        elements = sorted((stored_element(r.payload) for r in records), key=lambda e: (e.kind.value, e.index))
        return StoredNote(note_id, _public(found[0].payload), elements)

    def note_vectors(self, note_ids: Sequence[str], dim: int) -> dict[str, NoteVectors]:
        """Full-dim vectors of stored notes (active version) for exact re-scoring: one batch retrieve of the
        note points and their PACK points (float32 bytes; module constants); notes without a pack (written
        before it existed) are read from the engine's vectors (`_engine_vectors`: two more retrieves).

        dim: the full dim D. Returns note id -> NoteVectors, elements in the note's `element_keys` order;
        ids not stored are absent.
        """
        shard = self._active()
        ids = list(dict.fromkeys(note_ids))
        if shard is None or not ids:
            return {}
        records = shard.retrieve([note_point_id(n) for n in ids] + [pack_point_id(n) for n in ids],
                                 with_payload=_light(), with_vector=False)
        notes: dict[str, dict[str, Any]] = {}
        packs: dict[str, dict[str, Any] | None] = {}
        for r in records:
            payload = r.payload  # built anew at every access: read once
            (notes if payload.get(RECORD) == NOTE else packs)[payload["note_id"]] = payload
        out: dict[str, NoteVectors] = {}
        for note_id, payload in notes.items():
            packed = (packs.get(note_id) or {}).get(PACK_KEY)
            vectors = None if packed is None else _unpack(payload, packed, dim)
            if vectors is not None:
                out[note_id] = vectors
        missing = [n for n in notes if n not in out]
        if missing:
            out |= self._engine_vectors(shard, missing, dim)
        return out

    @staticmethod
    def _engine_vectors(shard: qe.EdgeShard, ids: Sequence[str], dim: int) -> dict[str, NoteVectors]:
        """note_vectors from the engine's vectors: the note points (`global_<D>`), then all their elements
        (`local_<D>`), two batch retrieves (~E x D Python floats a note: the slow path)."""
        notes = shard.retrieve([note_point_id(n) for n in ids], with_payload=_light(),
                               with_vector=[f"global_{dim}"])
        globals_ = _matrix(notes, f"global_{dim}", dim)  # (N, D)
        owners, element_ids = [], []
        for i, r in enumerate(notes):
            keys = element_ids_of(r.payload["note_id"], r.payload.get("element_keys") or [])
            element_ids += keys
            owners += [i] * len(keys)
        records = shard.retrieve(element_ids, with_payload=True, with_vector=[f"local_{dim}"]) if element_ids else []
        by_id = {str(r.id): k for k, r in enumerate(records)}
        locals_ = _matrix(records, f"local_{dim}", dim)  # (M, D)
        out: dict[str, NoteVectors] = {}
        for i, r in enumerate(notes):
            payload = _public(r.payload)
            out[payload["note_id"]] = NoteVectors(globals_[i], payload, [], [])
        for owner, pid in zip(owners, element_ids):
            k = by_id.get(pid)
            if k is None:  # an element point that is not there: left out
                continue
            target = out[notes[owner].payload["note_id"]]
            target.elements.append(stored_element(records[k].payload))
            target.element_vectors.append(locals_[k])
        return out

    def _count(self, shard: qe.EdgeShard | None, record: str) -> int:
        if shard is None:
            return 0
        return shard.count(qe.CountRequest(exact=True, filter=qe.Filter(must=[_field(RECORD, record)])))

    def count_notes(self) -> int:
        return self._count(self._active(), NOTE)

    def count_elements(self) -> int:
        return self._count(self._active(), ELEMENT)

    def count_in(self, version: str, which: str) -> int:
        """Points of a version (which = "notes" or "elements")."""
        return self._count(self._require(version), NOTE if which == "notes" else ELEMENT)

    def note_ids(self, offset: str | None = None, limit: int = 100) -> tuple[list[str], str | None]:
        """One page of stored note ids (in point-id order). offset: the cursor a previous page returned
        (None = first page). Returns (note ids, next cursor or None at the end)."""
        check_limit("limit", limit)
        shard = self._active()
        if shard is None:
            return [], None
        records, nxt = shard.scroll(qe.ScrollRequest(offset=offset, limit=limit, filter=qe.Filter(
            must=[_field(RECORD, NOTE)]), with_payload=["note_id"], with_vector=False))
        return [r.payload["note_id"] for r in records], (None if nxt is None else str(nxt))

    # ---- search --------------------------------------------------------------------------------------
    def _params(self) -> qe.SearchParams:
        return qe.SearchParams(hnsw_ef=self.config.hnsw_ef, exact=self.config.exact)

    def _request(self, kind: str, vector: np.ndarray, limit: int, flt: qe.Filter | None,
                 use_prefetch: bool, details: bool = True) -> qe.QueryRequest:
        """One query: `<kind>_<D>` nearest, over `prefetch_limit` (elements: `element_prefetch_limit`)
        `<kind>_<prefix>` candidates if prefetching."""
        dim = vector.shape[0]
        prefix = self.config.prefix_dim
        prefetches = None
        if use_prefetch and prefix < dim:
            candidates = self.config.prefetch_limit if kind == "global" else self.config.element_prefetch_limit
            prefetches = [qe.Prefetch(limit=max(candidates, limit), filter=flt, params=self._params(),
                                      query=qe.Query.Nearest(matryoshka_prefix(vector, prefix).tolist(),
                                                             using=f"{kind}_{prefix}"))]
        if kind == "global":
            with_payload: Any = _light()
        else:
            with_payload = True if details else qe.PayloadSelector.Include(list(HIT_FIELDS))
        return qe.QueryRequest(limit=limit, query=qe.Query.Nearest(vector.tolist(), using=f"{kind}_{dim}"),
                               prefetches=prefetches, filter=flt, params=self._params(), with_payload=with_payload,
                               with_vector=False)

    def search_global(self, vector: np.ndarray, limit: int = 10, exclude_note_id: str | None = None,
                      use_prefetch: bool | None = None, only: Sequence[str] | None = None) -> list[GlobalHit]:
        """Notes nearest a global vector (D,) float32, best first (score = cosine of the full vectors).

        use_prefetch: True = prefix-vector candidates (prefetch_limit of them) re-scored with the full
        vector in the same query; False = the full vector alone; None = the store's default (on).
        exclude_note_id: leave this note out (self-match); only: search just these note ids (payload-indexed
        filters; an empty `only` gives no hits). GlobalHit.stage says which route ran.
        """
        vec = check_vectors("global query vector", vector, 1)  # (D,)
        use_prefetch = self.prefetch_default if use_prefetch is None else use_prefetch
        check_limit("limit", limit)
        shard = self._active()
        if shard is None or (only is not None and not only):
            return []
        points = shard.query(self._request("global", vec, limit, _search_filter(NOTE, exclude_note_id, only),
                                           use_prefetch))
        stage = stage_name("global", vec.shape[0], self.config.prefix_dim, use_prefetch)
        return [GlobalHit(p.payload["note_id"], float(p.score), p.payload.get("title", ""), stage, _public(p.payload))
                for p in points]

    def search_elements(self, vectors: np.ndarray, limit_per_query: int = 10, exclude_note_id: str | None = None,
                        use_prefetch: bool | None = None, only: Sequence[str] | None = None,
                        details: bool = True) -> list[list[ElementHit]]:
        """For each query element (Q, D) float32, the stored elements nearest it, best first; one batch query
        (`EdgeShard.query_batch`). use_prefetch, exclude_note_id and only as in search_global.

        details: False = light hits (note_id, kind, index, score; the rest None: the engine reads only those
        payload fields), what `check` ranks by.
        Returns Q lists of ElementHit (score = cosine of the full local vectors). Q = 0 returns [].
        """
        vecs = check_vectors("element query vectors", vectors, 2)  # (Q, D)
        use_prefetch = self.prefetch_default if use_prefetch is None else use_prefetch
        check_limit("limit_per_query", limit_per_query)
        if vecs.shape[0] == 0:
            return []
        shard = self._active()
        if shard is None or (only is not None and not only):
            return [[] for _ in range(vecs.shape[0])]
        flt = _search_filter(ELEMENT, exclude_note_id, only)
        batch = qe.QueryBatchRequest([self._request("local", v, limit_per_query, flt, use_prefetch, details)
                                      for v in vecs])
        return [[element_hit(p.payload, p.score) for p in points] for points in shard.query_batch(batch)]

    def search_pdq(self, bits: PdqHash | np.ndarray, max_distance: int = 31, limit: int = 10,
                   exclude_note_id: str | None = None) -> list[PdqHit]:
        """Stored images whose PDQ hash is within `max_distance` bits of `bits` ((256,) 0/1), nearest first
        (Manhattan distance of 0/1 vectors = Hamming). Quality is reported, not filtered."""
        return self.search_pdq_batch([bits], max_distance, limit, exclude_note_id)[0]

    def search_pdq_batch(self, hashes: Sequence[PdqHash | np.ndarray], max_distance: int = 31, limit: int = 10,
                         exclude_note_id: str | None = None) -> list[list[PdqHit]]:
        """search_pdq for several hashes as one batch query (`EdgeShard.query_batch`: 3 hashes cost about
        what one does alone). Returns one list of PdqHit per hash, in order; no hashes returns []."""
        arrays = [pdq_bits(bits, max_distance) for bits in hashes]
        check_limit("limit", limit)
        shard = self._active()
        if shard is None or not arrays:
            return [[] for _ in arrays]
        flt = _search_filter(ELEMENT, exclude_note_id, None)
        batch = qe.QueryBatchRequest([qe.QueryRequest(
            limit=limit, query=qe.Query.Nearest(arr.astype(np.float32).tolist(), using=PDQ_VECTOR), filter=flt,
            score_threshold=max_distance + 0.5, params=self._params(),
            with_payload=qe.PayloadSelector.Include(list(PDQ_HIT_FIELDS)), with_vector=False) for arr in arrays])
        return [pdq_hits([(p.score, p.payload) for p in points], max_distance) for points in shard.query_batch(batch)]
