"""The store contract shared by both vector-store engines: dataclasses, errors, point ids, payloads.

Two engines implement it (docs/architecture.md, "Vector store"):
- `EdgeStore` (app/store_edge.py): Qdrant Edge, the in-process Rust engine, at `QDRANT_PATH` (the embedded
  default);
- `QdrantStore` (app/store_server.py): qdrant-client against a Qdrant server (`QDRANT_URL`), or its local mode
  (only as a test oracle and as the source of `uninote store migrate`).
Both write the very payloads `note_points` builds here, with the same deterministic point ids, so the
answers of one are the answers of the other (tests/app/test_store_congruence.py).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Sequence

import numpy as np

from app.image_hashes import PDQ_BITS, PdqHash
from app.settings import Settings
from encoder.types import Box, ElementKind, EncodedNote, matryoshka_prefix

NOTES = "notes"
ELEMENTS = "elements"
PDQ_VECTOR = "pdq"
POINT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/uninote/point-ids")
_NAMESPACE_BYTES = POINT_NAMESPACE.bytes
_VERSION_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


class StoreLockedError(RuntimeError):
    """The embedded store folder is already open in another process."""


class CollectionsMissingError(RuntimeError):
    """No collections exist for the requested model version (call `ensure_collections` first)."""


class PayloadError(ValueError):
    """A note payload that cannot be stored (not JSON). `upsert_note` then removes the note (all-or-nothing
    of a re-index), as for any failure after validation."""


class StoreOpenError(RuntimeError):
    """The store folder cannot be opened: corrupt, foreign, unreadable, or written by the old local mode
    (the message names the folder and what to do)."""


class StoreWriteError(RuntimeError):
    """The embedded store folder refused a write (permission, full disk, I/O): the message names the folder.
    The note being written is left absent, never half-written."""


@dataclass(frozen=True)
class StoreConfig:
    """How collections are created and searched (from `Settings`; server-only fields are ignored elsewhere)."""

    prefix_dim: int = 64  # Matryoshka prefix dim of the prefetch stage
    prefetch_limit: int = 1000  # candidates fetched by the prefix stage of the global search
    # ... of each element query: a library holds many near copies of one photo or text, and the 64-dim
    # prefix ranks them less sharply than the full vector (bench_scale's 100k library, exact prefix
    # ranking: 200 candidates keep 0.81 of the true top 10, 400 keep 0.98; docs/scaling.md)
    element_prefetch_limit: int = 400
    shard_number: int = 1  # shards per collection (server)
    replication_factor: int = 1  # replicas per shard (cluster)
    on_disk: bool = False  # keep the full-dim vectors on disk (server)
    quantize_prefix: bool = False  # int8 scalar quantization of the prefix vector (server, Edge)
    # coarse-to-fine search by default? None = on for Edge and a server; off in qdrant-client's local mode,
    # which re-scores prefetch candidates in Python (4-6x slower than one full-dim pass, same top-10).
    prefetch: bool | None = None
    exact: bool = False  # brute-force search instead of HNSW (Edge, server)
    hnsw_ef: int | None = None  # HNSW ef at search time (None = the engine's default)
    hnsw_m: int = 16  # HNSW edges per node of the prefix vectors' graph (Edge; server: new collections)
    hnsw_ef_construct: int = 100  # HNSW build candidates of that graph
    optimize_points: int = 20_000  # Edge: build the HNSW index once this many points are unindexed
    indexing_threshold_kb: int | None = None  # Edge: segments above this size get HNSW (None = Edge's default)

    @classmethod
    def from_settings(cls, settings: Settings) -> "StoreConfig":
        return cls(
            prefix_dim=settings.prefix_dim,
            prefetch_limit=settings.prefetch_limit,
            element_prefetch_limit=settings.element_prefetch_limit,
            shard_number=settings.qdrant_shard_number,
            replication_factor=settings.qdrant_replication_factor,
            on_disk=settings.qdrant_on_disk,
            quantize_prefix=settings.qdrant_quantize_prefix,
            prefetch=settings.qdrant_prefetch,
            exact=settings.qdrant_exact,
            hnsw_ef=settings.qdrant_hnsw_ef,
            hnsw_m=settings.qdrant_hnsw_m,
            hnsw_ef_construct=settings.qdrant_hnsw_ef_construct,
            optimize_points=settings.edge_optimize_points,
        )


@dataclass(frozen=True)
class GlobalHit:
    """A stored note found by its global vector. score: cosine of the full vectors; stage: how it was found."""

    note_id: str
    score: float
    title: str
    stage: str  # "prefetch global_64 -> global_512" or "global_512"
    payload: dict[str, Any] = field(default_factory=dict, compare=False)


# What a light element hit carries (search_elements(details=False)): the rest of ElementHit is None
HIT_FIELDS = ("note_id", "kind", "index")
PDQ_HIT_FIELDS = ("note_id", "index", "image_index", "pdq_quality")  # the payload a PdqHit is built from


@dataclass(frozen=True)
class ElementHit:
    """A stored local element found by a query element. score: cosine of the full local vectors.
    image_index, box, text and pdq are None in a light hit (search_elements(..., details=False))."""

    note_id: str
    kind: ElementKind
    index: int
    score: float
    image_index: int | None = None
    box: Box | None = None
    text: str | None = None
    pdq: PdqHash | None = None  # the stored image's PDQ hash (IMAGE elements with a hash)


@dataclass(frozen=True)
class PdqHit:
    """A stored IMAGE element whose PDQ hash is within the asked Hamming distance."""

    note_id: str
    index: int
    image_index: int | None
    distance: int  # Hamming distance in [0, 256]
    quality: int


@dataclass(frozen=True)
class StoredElement:
    kind: ElementKind
    index: int
    image_index: int | None
    box: Box | None
    text: str | None
    pdq: PdqHash | None


@dataclass(frozen=True)
class StoredNote:
    """A note as stored: its payload (note_id, title, model_version, n_images, indexed_at, ...) and elements."""

    note_id: str
    payload: dict[str, Any]
    elements: list[StoredElement]


@dataclass
class NoteVectors:
    """A stored note's full-dim vectors. global_vector: (D,) float32; element_vectors[i]: (D,) float32 of
    elements[i]."""

    global_vector: np.ndarray
    payload: dict[str, Any]
    elements: list[StoredElement]
    element_vectors: list[np.ndarray]

    def element_matrix(self) -> np.ndarray:
        """(E, D) float32 (E = 0 gives shape (0, D))."""
        if not self.element_vectors:
            return np.zeros((0, self.global_vector.shape[0]), dtype=np.float32)
        return np.stack(self.element_vectors).astype(np.float32)


@dataclass(frozen=True)
class PointWrite:
    """One point to write: its id, named vectors (name -> list of floats) and payload."""

    id: str
    vectors: dict[str, list[float]]
    payload: dict[str, Any]


@dataclass(frozen=True)
class NoteWrite:
    """Everything `upsert_note` writes for one note: the note point and its element points."""

    note: PointWrite
    elements: list[PointWrite]


def _uuid5(name: str) -> str:
    """str(uuid.uuid5(POINT_NAMESPACE, name)) in a third of the time (check reads ~1,400 element ids)."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode("utf-8")).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def note_point_id(note_id: str) -> str:
    """Deterministic point id of a note (uuid5)."""
    return _uuid5(note_id)


def pack_point_id(note_id: str) -> str:
    """Deterministic point id of the packed copy of a note's vectors (Edge; uuid5 of f"{note_id}/pack", a
    name no element has: theirs are f"{note_id}/{kind}/{index}")."""
    return _uuid5(f"{note_id}/pack")


def element_point_id(note_id: str, kind: ElementKind | str, index: int) -> str:
    """Deterministic point id of a local element (uuid5 of f"{note_id}/{kind}/{index}")."""
    return _uuid5(f"{note_id}/{ElementKind(kind).value}/{index}")


def element_ids_of(note_id: str, element_keys: Sequence[str]) -> list[str]:
    """Element point ids from a note payload's `element_keys` ("kind/index", kind as stored)."""
    ids = []
    for key in element_keys:
        kind, index = key.split("/", 1)
        ids.append(_uuid5(f"{note_id}/{kind}/{int(index)}"))
    return ids


def physical_name(alias: str, version: str) -> str:
    """`notes`, "v1" -> `notes__v1`. Raises ValueError for a version Qdrant cannot name a collection with."""
    if not _VERSION_PATTERN.match(version):
        raise ValueError(f"model version {version!r} must match {_VERSION_PATTERN.pattern}")
    return f"{alias}__{version}"


def check_vectors(name: str, vectors: np.ndarray, ndim: int) -> np.ndarray:
    """float32 copy of `vectors`; ValueError when it is not `ndim`-d or holds NaN/inf."""
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-d array, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def check_limit(name: str, limit: int) -> None:
    if limit < 1:
        raise ValueError(f"{name} must be >= 1, got {limit}")


def pdq_bits(bits: PdqHash | np.ndarray, max_distance: int) -> np.ndarray:
    """(256,) 0/1 bits of a PDQ query; ValueError for another shape or a distance outside [0, 256]."""
    arr = bits.bits if isinstance(bits, PdqHash) else np.asarray(bits)
    if arr.shape != (PDQ_BITS,):
        raise ValueError(f"PDQ bits must have shape ({PDQ_BITS},), got {arr.shape}")
    if not 0 <= max_distance <= PDQ_BITS:
        raise ValueError(f"max_distance must be in [0, {PDQ_BITS}], got {max_distance}")
    return arr


def pdq_from_payload(payload: dict[str, Any]) -> PdqHash | None:
    text = payload.get("pdq_hex")
    return None if not text else PdqHash.from_hex(text, payload.get("pdq_quality") or 0)


def box_of(value: Any) -> Box | None:
    return None if value is None else tuple(float(x) for x in value)  # type: ignore[return-value]


_KINDS = {k.value: k for k in ElementKind}  # a dict look-up: ElementKind(value) costs ~5 us, x1,400 per check


def _kind(value: str) -> ElementKind:
    return _KINDS.get(value) or ElementKind(value)  # ElementKind raises ValueError for an unknown kind


def stored_element(payload: dict[str, Any]) -> StoredElement:
    p = payload
    return StoredElement(_kind(p["kind"]), p["index"], p.get("image_index"), box_of(p.get("box")),
                         p.get("text"), pdq_from_payload(p))


def element_hit(payload: dict[str, Any], score: float) -> ElementHit:
    """An ElementHit from a stored element's payload (a light one, HIT_FIELDS only, gives None for the rest)."""
    p = payload
    return ElementHit(p["note_id"], _kind(p["kind"]), p["index"], float(score), p.get("image_index"),
                      box_of(p.get("box")), p.get("text"), pdq_from_payload(p))


def pdq_hits(scored: Sequence[tuple[float, dict[str, Any]]], max_distance: int) -> list[PdqHit]:
    """PdqHits from (Manhattan score, payload) pairs, keeping distance <= max_distance."""
    hits = []
    for score, pl in scored:
        distance = int(round(score))
        if distance <= max_distance:
            hits.append(PdqHit(pl["note_id"], pl["index"], pl.get("image_index"), distance,
                               int(pl.get("pdq_quality") or 0)))
    return hits


def stage_name(kind: str, dim: int, prefix_dim: int, use_prefetch: bool) -> str:
    if use_prefetch and prefix_dim < dim:
        return f"prefetch {kind}_{prefix_dim} -> {kind}_{dim}"
    return f"{kind}_{dim}"


def prefix_and_full(dims: Sequence[int], prefix_dim: int) -> tuple[int, int]:
    """(prefix dim, full dim D) of the encoder's Matryoshka dims; ValueError if the prefix is not one."""
    if not dims:
        raise ValueError("dims must name at least the full dim")
    full = int(dims[-1])
    if prefix_dim not in dims:
        raise ValueError(f"prefix_dim {prefix_dim} is not one of the encoder's Matryoshka dims {tuple(dims)}")
    return prefix_dim, full


def _check_json(note_id: str, payload: dict[str, Any]) -> None:
    try:
        json.dumps(payload, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise PayloadError(f"note {note_id!r}: the payload cannot be serialized to JSON ({err})") from err


def note_points(encoded: EncodedNote, pdq: Sequence[PdqHash | None], payload: dict[str, Any],
                prefix_dim: int) -> NoteWrite:
    """The points of one note, as both engines write them (layout: docs/architecture.md).

    Note point: vectors `global_<prefix>`, `global_<D>`; payload = caller's payload | note_id, element_keys,
    title, model_version, n_images, indexed_at. Element points: `local_<prefix>`, `local_<D>` and, on IMAGE
    elements with a hash, `pdq` (256 floats 0/1); payload note_id, kind, index, image_index, box, text,
    pdq_quality, pdq_hex.
    Raises ValueError for vectors of the wrong shape or dim, NaN, duplicate elements, more PDQ hashes than
    IMAGE elements, or a payload that is not JSON.
    """
    note_id = encoded.note_id
    full = check_vectors(f"note {note_id!r}: global_vector", encoded.global_vector, 1)  # (D,)
    dim = full.shape[0]
    n_images = sum(1 for e in encoded.locals if e.kind == ElementKind.IMAGE)
    if len(pdq) > n_images:
        raise ValueError(f"note {note_id!r}: {len(pdq)} PDQ hashes for {n_images} IMAGE elements")
    elements: list[PointWrite] = []
    seen: set[str] = set()
    for element in encoded.locals:
        vec = check_vectors(f"note {note_id!r}: {element.kind}/{element.index}", element.vector, 1)  # (D,)
        if vec.shape[0] != dim:
            raise ValueError(f"note {note_id!r}: {element.kind}/{element.index} has dim {vec.shape[0]}, "
                             f"the global vector {dim}")
        pid = element_point_id(note_id, element.kind, element.index)
        if pid in seen:
            raise ValueError(f"note {note_id!r}: duplicate element {element.kind}/{element.index}")
        seen.add(pid)
        vectors = {f"local_{prefix_dim}": matryoshka_prefix(vec, prefix_dim).tolist(), f"local_{dim}": vec.tolist()}
        hash_ = pdq[element.index] if element.kind == ElementKind.IMAGE and element.index < len(pdq) else None
        if hash_ is not None:
            vectors[PDQ_VECTOR] = hash_.bits.astype(np.float32).tolist()
        elements.append(PointWrite(pid, vectors, {
            "note_id": note_id,
            "kind": ElementKind(element.kind).value,
            "index": element.index,
            "image_index": element.image_index,
            "box": list(element.box) if element.box is not None else None,
            "text": element.text,
            "pdq_quality": hash_.quality if hash_ is not None else None,
            "pdq_hex": hash_.to_hex() if hash_ is not None else None,
        }))
    note_payload = dict(payload) | {
        "note_id": note_id,
        "element_keys": [f"{ElementKind(e.kind).value}/{e.index}" for e in encoded.locals],
        "title": payload.get("title", ""),
        "model_version": encoded.model_version,
        "n_images": n_images,
        "indexed_at": datetime.now(timezone.utc).isoformat(),
    }
    _check_json(note_id, note_payload)
    note = PointWrite(note_point_id(note_id), {
        f"global_{prefix_dim}": matryoshka_prefix(full, prefix_dim).tolist(), f"global_{dim}": full.tolist()},
        note_payload)
    return NoteWrite(note, elements)
