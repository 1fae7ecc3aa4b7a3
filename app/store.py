"""The Qdrant vector store of indexed notes: one point per note, one point per local element.

Layout (docs/architecture.md):
- `notes`    -> `notes__<version>`:    named vectors `global_<prefix>`, `global_<D>` (cosine); payload note_id,
  title, model_version, n_images, indexed_at, element_keys ("kind/index" of its elements, to find stale
  ones without a payload scan) (+ the caller's payload).
- `elements` -> `elements__<version>`: named vectors `local_<prefix>`, `local_<D>` (cosine) and, on IMAGE
  elements only, `pdq` (256 uint8 0/1 bits, Manhattan distance = Hamming); payload note_id, kind, index,
  image_index, box, text, pdq_quality, pdq_hex.
`notes`/`elements` are aliases: a re-index with new weights writes beside the old collections and
`switch_alias(version)` moves both aliases in one atomic call. Point ids are uuid5 of the note id (and of
f"{note_id}/{kind}/{index}"), so indexing is idempotent.

Search is coarse-to-fine with the Query API (qdrant-client 1.20 `query_points`, `prefetch`): the Matryoshka
prefix vector (MRL, Kusupati et al. 2022; paper §3.3) fetches `prefetch_limit` candidates, the full vector
re-scores them. That is the default on a server (HNSW, default config; the prefix vector optionally int8).
Local mode (the embedded default) is exact brute force, and its prefetch re-scoring runs in Python, so
there one full-dim pass is the default: same answer, 4-6x faster (StoreConfig.prefetch overrides).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Sequence

import numpy as np
from qdrant_client import QdrantClient, models

from app.image_hashes import PDQ_BITS, PdqHash
from app.settings import Settings
from encoder.types import Box, ElementKind, EncodedNote, matryoshka_prefix

NOTES = "notes"
ELEMENTS = "elements"
PDQ_VECTOR = "pdq"
POINT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/uninote/point-ids")
_VERSION_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_SCROLL_PAGE = 256


class StoreLockedError(RuntimeError):
    """The embedded (local-mode) Qdrant folder is already open in another process."""


class CollectionsMissingError(RuntimeError):
    """No collections exist for the requested model version (call `ensure_collections` first)."""


@dataclass(frozen=True)
class StoreConfig:
    """How collections are created and searched (from `Settings`; server-only fields are ignored locally)."""

    prefix_dim: int = 64  # Matryoshka prefix dim of the prefetch stage
    prefetch_limit: int = 1000  # candidates fetched by the prefix stage
    shard_number: int = 1  # shards per collection (server)
    replication_factor: int = 1  # replicas per shard (cluster)
    on_disk: bool = False  # keep the full-dim vectors on disk (server)
    quantize_prefix: bool = False  # int8 scalar quantization of the prefix vector (server)
    # coarse-to-fine search by default? None = on a server only. Local mode is exact brute force anyway,
    # and qdrant-client's local prefetch re-scores candidates in Python: 4-6x slower than one full-dim
    # pass at 3,000 notes (benchmarks/bench_search.py), with the same top-10.
    prefetch: bool | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> "StoreConfig":
        return cls(
            prefix_dim=settings.prefix_dim,
            prefetch_limit=settings.prefetch_limit,
            shard_number=settings.qdrant_shard_number,
            replication_factor=settings.qdrant_replication_factor,
            on_disk=settings.qdrant_on_disk,
            quantize_prefix=settings.qdrant_quantize_prefix,
            prefetch=settings.qdrant_prefetch,
        )


@dataclass(frozen=True)
class GlobalHit:
    """A stored note found by its global vector. score: cosine of the full vectors; stage: how it was found."""

    note_id: str
    score: float
    title: str
    stage: str  # "prefetch global_64 -> global_512" or "global_512"
    payload: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class ElementHit:
    """A stored local element found by a query element. score: cosine of the full local vectors."""

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


def note_point_id(note_id: str) -> str:
    """Deterministic point id of a note (uuid5)."""
    return str(uuid.uuid5(POINT_NAMESPACE, note_id))


def element_point_id(note_id: str, kind: ElementKind | str, index: int) -> str:
    """Deterministic point id of a local element (uuid5 of f"{note_id}/{kind}/{index}")."""
    return str(uuid.uuid5(POINT_NAMESPACE, f"{note_id}/{ElementKind(kind).value}/{index}"))


def physical_name(alias: str, version: str) -> str:
    """`notes`, "v1" -> `notes__v1`. Raises ValueError for a version Qdrant cannot name a collection with."""
    if not _VERSION_PATTERN.match(version):
        raise ValueError(f"model version {version!r} must match {_VERSION_PATTERN.pattern}")
    return f"{alias}__{version}"


def _note_filter(note_id: str) -> models.Filter:
    return models.Filter(must=[models.FieldCondition(key="note_id", match=models.MatchValue(value=note_id))])


def _exclude_filter(note_id: str | None) -> models.Filter | None:
    if note_id is None:
        return None
    return models.Filter(must_not=[models.FieldCondition(key="note_id", match=models.MatchValue(value=note_id))])


def _check_vectors(name: str, vectors: np.ndarray, ndim: int) -> np.ndarray:
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-d array, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def _pdq_from_payload(payload: dict[str, Any]) -> PdqHash | None:
    text = payload.get("pdq_hex")
    return None if not text else PdqHash.from_hex(text, payload.get("pdq_quality") or 0)


def _box(value: Any) -> Box | None:
    return None if value is None else tuple(float(x) for x in value)  # type: ignore[return-value]


class QdrantStore:
    """Notes and local elements in Qdrant (embedded local mode or a server); see the module docstring.

    Writes go to the physical collections of `EncodedNote.model_version`; reads and searches go through
    the `notes`/`elements` aliases (the active version).
    """

    def __init__(self, client: QdrantClient, config: StoreConfig | None = None, is_local: bool | None = None):
        self.client = client
        self.config = config or StoreConfig()
        self.is_local = is_local if is_local is not None else type(client._client).__name__ == "QdrantLocal"
        self._ensured: set[str] = set()
        self.prefetch_default = self.config.prefetch if self.config.prefetch is not None else not self.is_local

    # ---- opening -------------------------------------------------------------------------------------
    @classmethod
    def from_settings(cls, settings: Settings) -> "QdrantStore":
        """A server client when `settings.qdrant_url` is set, else local mode at `resolved_qdrant_path`.

        Raises StoreLockedError when another process holds the local folder.
        """
        config = StoreConfig.from_settings(settings)
        if settings.qdrant_url:
            client = QdrantClient(url=settings.qdrant_url, api_key=settings.qdrant_api_key)
            return cls(client, config, is_local=False)
        path = settings.resolved_qdrant_path
        path.mkdir(parents=True, exist_ok=True)
        try:
            client = QdrantClient(path=str(path))
        except RuntimeError as err:
            if "already accessed" not in str(err):
                raise
            raise StoreLockedError(
                f"the local Qdrant folder {path} is already open in another process (embedded local mode "
                f"allows one process per folder). Stop the other process (a CLI command, a worker, the "
                f"dashboard), or run a Qdrant server and set QDRANT_URL so that several processes can share it."
            ) from err
        return cls(client, config, is_local=True)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> "QdrantStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- collections and aliases ---------------------------------------------------------------------
    def _vector_params(self, size: int, prefix: bool) -> models.VectorParams:
        if self.is_local:
            return models.VectorParams(size=size, distance=models.Distance.COSINE)
        quantization = None
        if prefix and self.config.quantize_prefix:
            quantization = models.ScalarQuantization(
                scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, always_ram=True)
            )
        return models.VectorParams(
            size=size,
            distance=models.Distance.COSINE,
            on_disk=(self.config.on_disk and not prefix) or None,
            quantization_config=quantization,
        )

    def _prefix_and_full(self, dims: Sequence[int]) -> tuple[int, int]:
        if not dims:
            raise ValueError("dims must name at least the full dim")
        full = int(dims[-1])
        prefix = self.config.prefix_dim
        if prefix not in dims:
            raise ValueError(f"prefix_dim {prefix} is not one of the encoder's Matryoshka dims {tuple(dims)}")
        return prefix, full

    def ensure_collections(self, version: str, dims: Sequence[int]) -> None:
        """Create `notes__<version>` and `elements__<version>` if missing (dims: the encoder's Matryoshka
        dims, ascending, last = full dim D). When no `notes` alias exists yet, point the aliases at this
        version, so the first index is searchable at once. Raises ValueError for a bad version or dims.
        """
        prefix, full = self._prefix_and_full(dims)
        server_kwargs: dict[str, Any] = {}
        if not self.is_local:
            server_kwargs = dict(
                shard_number=self.config.shard_number, replication_factor=self.config.replication_factor
            )
        notes_name, elements_name = physical_name(NOTES, version), physical_name(ELEMENTS, version)
        if not self.client.collection_exists(notes_name):
            vectors = {f"global_{prefix}": self._vector_params(prefix, True)}
            vectors[f"global_{full}"] = self._vector_params(full, False)
            self.client.create_collection(notes_name, vectors_config=vectors, **server_kwargs)
            self._create_payload_indexes(notes_name, ["note_id"])
        if not self.client.collection_exists(elements_name):
            vectors = {f"local_{prefix}": self._vector_params(prefix, True)}
            vectors[f"local_{full}"] = self._vector_params(full, False)
            vectors[PDQ_VECTOR] = models.VectorParams(
                size=PDQ_BITS, distance=models.Distance.MANHATTAN, datatype=models.Datatype.UINT8
            )
            self.client.create_collection(elements_name, vectors_config=vectors, **server_kwargs)
            self._create_payload_indexes(elements_name, ["note_id", "kind"])
        self._ensured.add(version)
        if self.active_version() is None:
            self.switch_alias(version)

    def _create_payload_indexes(self, collection: str, fields: list[str]) -> None:
        if self.is_local:  # local mode has no payload indexes (qdrant-client warns and ignores them)
            return
        for name in fields:
            self.client.create_payload_index(collection, name, field_schema=models.PayloadSchemaType.KEYWORD)

    def versions(self) -> list[str]:
        """Model versions that have physical collections (sorted)."""
        names = [c.name for c in self.client.get_collections().collections]
        return sorted(n[len(NOTES) + 2:] for n in names if n.startswith(f"{NOTES}__"))

    def active_version(self) -> str | None:
        """The version the `notes` alias points at, or None before the first index."""
        for alias in self.client.get_aliases().aliases:
            if alias.alias_name == NOTES:
                return alias.collection_name[len(NOTES) + 2:]
        return None

    def switch_alias(self, version: str) -> None:
        """Point `notes`/`elements` at `version` in one atomic alias update. Raises CollectionsMissingError."""
        notes_name, elements_name = physical_name(NOTES, version), physical_name(ELEMENTS, version)
        if not (self.client.collection_exists(notes_name) and self.client.collection_exists(elements_name)):
            raise CollectionsMissingError(f"no collections for model version {version!r}: index it first")
        existing = {a.alias_name for a in self.client.get_aliases().aliases}
        ops: list[Any] = [
            models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=a))
            for a in (NOTES, ELEMENTS)
            if a in existing
        ]
        ops += [
            models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=notes_name, alias_name=NOTES)),
            models.CreateAliasOperation(
                create_alias=models.CreateAlias(collection_name=elements_name, alias_name=ELEMENTS)
            ),
        ]
        self.client.update_collection_aliases(change_aliases_operations=ops)

    def drop_version(self, version: str) -> None:
        """Delete a version's collections. Raises ValueError for the active version."""
        if version == self.active_version():
            raise ValueError(f"version {version!r} is active: switch the aliases first")
        for alias in (NOTES, ELEMENTS):
            self.client.delete_collection(physical_name(alias, version))
        self._ensured.discard(version)

    def _require(self, version: str) -> tuple[str, str]:
        notes_name, elements_name = physical_name(NOTES, version), physical_name(ELEMENTS, version)
        if version not in self._ensured:
            if not self.client.collection_exists(notes_name):
                raise CollectionsMissingError(
                    f"no collections for model version {version!r}: call ensure_collections(version, dims) first"
                )
            self._ensured.add(version)
        return notes_name, elements_name

    # ---- writes --------------------------------------------------------------------------------------
    def upsert_note(self, encoded: EncodedNote, pdq: Sequence[PdqHash | None], payload: dict[str, Any]) -> None:
        """Write one note (elements first, then the note point, then drop its stale elements), wait=True.

        pdq: one entry per image of the note, by image index (None = no hash), or empty.
        payload: extra JSON-able note payload (author, created_at, ...); the store's own keys win.
        Into the collections of `encoded.model_version` (CollectionsMissingError if absent).
        All-or-nothing: if any step fails, everything of this note in that version is removed and the
        error re-raised (a failed re-index leaves the note absent, never half-written; index it again).
        Raises ValueError for vectors of the wrong shape, NaN, or a pdq list longer than the images.
        Stale elements are found from the note's `element_keys` payload; a process killed between the
        element and note writes can leave extra elements behind, which `delete_note` (a filter) removes.
        """
        notes_name, elements_name = self._require(encoded.model_version)
        note_id = encoded.note_id
        full = _check_vectors(f"note {note_id!r}: global_vector", encoded.global_vector, 1)  # (D,)
        dim = full.shape[0]
        prefix_dim = self.config.prefix_dim
        n_images = sum(1 for e in encoded.locals if e.kind == ElementKind.IMAGE)
        if len(pdq) > n_images:
            raise ValueError(f"note {note_id!r}: {len(pdq)} PDQ hashes for {n_images} IMAGE elements")

        points: list[models.PointStruct] = []
        seen: set[str] = set()
        for element in encoded.locals:
            vec = _check_vectors(f"note {note_id!r}: {element.kind}/{element.index}", element.vector, 1)  # (D,)
            if vec.shape[0] != dim:
                raise ValueError(f"note {note_id!r}: {element.kind}/{element.index} has dim {vec.shape[0]}, "
                                 f"the global vector {dim}")
            pid = element_point_id(note_id, element.kind, element.index)
            if pid in seen:
                raise ValueError(f"note {note_id!r}: duplicate element {element.kind}/{element.index}")
            seen.add(pid)
            vectors: dict[str, Any] = {
                f"local_{prefix_dim}": matryoshka_prefix(vec, prefix_dim).tolist(),
                f"local_{dim}": vec.tolist(),
            }
            hash_ = None
            if element.kind == ElementKind.IMAGE and element.index < len(pdq):
                hash_ = pdq[element.index]
            if hash_ is not None:
                vectors[PDQ_VECTOR] = hash_.bits.astype(np.float32).tolist()
            points.append(models.PointStruct(id=pid, vector=vectors, payload={
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
        note_point = models.PointStruct(
            id=note_point_id(note_id),
            vector={f"global_{prefix_dim}": matryoshka_prefix(full, prefix_dim).tolist(), f"global_{dim}": full.tolist()},
            payload=note_payload,
        )
        try:
            old_ids = self._stored_element_ids(notes_name, note_id)
            if points:
                self.client.upsert(elements_name, points=points, wait=True)
            self.client.upsert(notes_name, points=[note_point], wait=True)
            stale = sorted(old_ids - seen)
            if stale:
                self.client.delete(elements_name, points_selector=models.PointIdsList(points=stale), wait=True)
        except BaseException:
            self._delete_in(notes_name, elements_name, note_id, swallow=True)
            raise

    def delete_note(self, note_id: str) -> bool:
        """Remove the note and its elements from every version's collections. Returns whether it existed."""
        existed = False
        for version in self.versions():
            notes_name, elements_name = physical_name(NOTES, version), physical_name(ELEMENTS, version)
            existed |= bool(self.client.retrieve(notes_name, ids=[note_point_id(note_id)]))
            self._delete_in(notes_name, elements_name, note_id, swallow=False)
        return existed

    def _delete_in(self, notes_name: str, elements_name: str, note_id: str, swallow: bool) -> None:
        selector = models.FilterSelector(filter=_note_filter(note_id))
        for name, sel in ((elements_name, selector), (notes_name, models.PointIdsList(points=[note_point_id(note_id)]))):
            try:
                self.client.delete(name, points_selector=sel, wait=True)
            except Exception:
                if not swallow:
                    raise

    def _stored_element_ids(self, notes_name: str, note_id: str) -> set[str]:
        """Element point ids of the note as last written, from its `element_keys` payload (one retrieve by
        id: a payload filter scroll would scan every element in local mode)."""
        found = self.client.retrieve(notes_name, ids=[note_point_id(note_id)], with_payload=["element_keys"])
        keys = (found[0].payload or {}).get("element_keys", []) if found else []
        ids = set()
        for key in keys:
            kind, index = key.split("/", 1)
            ids.add(element_point_id(note_id, kind, int(index)))
        return ids

    # ---- reads ---------------------------------------------------------------------------------------
    def get_note(self, note_id: str) -> StoredNote | None:
        """The stored note (active version) with its elements sorted by (kind, index), or None."""
        found = self.client.retrieve(NOTES, ids=[note_point_id(note_id)], with_payload=True)
        if not found:
            return None
        elements: list[StoredElement] = []
        offset = None
        while True:
            records, offset = self.client.scroll(
                ELEMENTS, scroll_filter=_note_filter(note_id), limit=_SCROLL_PAGE, offset=offset, with_payload=True,
            )
            for r in records:
                p = r.payload or {}
                elements.append(StoredElement(ElementKind(p["kind"]), p["index"], p.get("image_index"),
                                              _box(p.get("box")), p.get("text"), _pdq_from_payload(p)))
            if offset is None:
                break
        elements.sort(key=lambda e: (e.kind.value, e.index))
        return StoredNote(note_id, dict(found[0].payload or {}), elements)

    def note_vectors(self, note_ids: Sequence[str], dim: int) -> dict[str, NoteVectors]:
        """Full-dim vectors of stored notes (active version) for exact re-scoring: two calls in all.

        dim: the full dim D. Returns note id -> NoteVectors; ids not stored are absent.
        """
        ids = list(dict.fromkeys(note_ids))
        if not ids:
            return {}
        out: dict[str, NoteVectors] = {}
        for r in self.client.retrieve(NOTES, ids=[note_point_id(n) for n in ids], with_payload=True,
                                      with_vectors=[f"global_{dim}"]):
            vec = np.asarray(r.vector[f"global_{dim}"], dtype=np.float32)  # (D,)
            out[r.payload["note_id"]] = NoteVectors(vec, dict(r.payload), [], [])
        flt = models.Filter(must=[models.FieldCondition(key="note_id", match=models.MatchAny(any=list(out)))])
        offset = None
        while out:
            records, offset = self.client.scroll(ELEMENTS, scroll_filter=flt, limit=_SCROLL_PAGE, offset=offset,
                                                 with_payload=True, with_vectors=[f"local_{dim}"])
            for r in records:
                p = r.payload or {}
                target = out.get(p["note_id"])
                if target is None:
                    continue
                target.elements.append(StoredElement(ElementKind(p["kind"]), p["index"], p.get("image_index"),
                                                     _box(p.get("box")), p.get("text"), _pdq_from_payload(p)))
                target.element_vectors.append(np.asarray(r.vector[f"local_{dim}"], dtype=np.float32))
            if offset is None:
                break
        return out

    def count_notes(self) -> int:
        return self.client.count(NOTES, exact=True).count

    def count_elements(self) -> int:
        return self.client.count(ELEMENTS, exact=True).count

    def note_ids(self, offset: str | None = None, limit: int = 100) -> tuple[list[str], str | None]:
        """One page of stored note ids (in point-id order). offset: the cursor a previous page returned
        (None = first page). Returns (note ids, next cursor or None at the end)."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        records, next_offset = self.client.scroll(
            NOTES, limit=limit, offset=offset, with_payload=["note_id"], with_vectors=False
        )
        return [r.payload["note_id"] for r in records], (None if next_offset is None else str(next_offset))

    # ---- search --------------------------------------------------------------------------------------
    def _use_prefetch(self, use_prefetch: bool | None) -> bool:
        return self.prefetch_default if use_prefetch is None else use_prefetch

    def _stage(self, kind: str, dim: int, use_prefetch: bool) -> str:
        if use_prefetch and self.config.prefix_dim < dim:
            return f"prefetch {kind}_{self.config.prefix_dim} -> {kind}_{dim}"
        return f"{kind}_{dim}"

    def _request(self, kind: str, vector: np.ndarray, limit: int, flt: models.Filter | None,
                 use_prefetch: bool) -> models.QueryRequest:
        dim = vector.shape[0]
        prefetch = None
        if use_prefetch and self.config.prefix_dim < dim:
            prefetch = models.Prefetch(
                query=matryoshka_prefix(vector, self.config.prefix_dim).tolist(),
                using=f"{kind}_{self.config.prefix_dim}",
                limit=max(self.config.prefetch_limit, limit),
                filter=flt,
            )
        return models.QueryRequest(prefetch=prefetch, query=vector.tolist(), using=f"{kind}_{dim}",
                                   filter=flt, limit=limit, with_payload=True)

    def search_global(self, vector: np.ndarray, limit: int = 10, exclude_note_id: str | None = None,
                      use_prefetch: bool | None = None) -> list[GlobalHit]:
        """Notes nearest a global vector (D,) float32, best first (score = cosine of the full vectors).

        use_prefetch: True = prefix-vector candidates (prefetch_limit of them) re-scored with the full
        vector; False = the full vector alone; None = the store's default (StoreConfig.prefetch).
        exclude_note_id: leave this note out (self-match). GlobalHit.stage says which route ran.
        """
        vec = _check_vectors("global query vector", vector, 1)  # (D,)
        use_prefetch = self._use_prefetch(use_prefetch)
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        req = self._request("global", vec, limit, _exclude_filter(exclude_note_id), use_prefetch)
        res = self.client.query_points(NOTES, prefetch=req.prefetch, query=req.query, using=req.using,
                                       query_filter=req.filter, limit=limit, with_payload=True)
        stage = self._stage("global", vec.shape[0], use_prefetch)
        return [GlobalHit(p.payload["note_id"], float(p.score), p.payload.get("title", ""), stage, dict(p.payload))
                for p in res.points]

    def search_elements(self, vectors: np.ndarray, limit_per_query: int = 10, exclude_note_id: str | None = None,
                        use_prefetch: bool | None = None) -> list[list[ElementHit]]:
        """For each query element (Q, D) float32, the stored elements nearest it, best first; one batch call
        (query_batch_points). use_prefetch as in search_global (`local_<prefix>` -> `local_<D>`).

        Returns Q lists of ElementHit (score = cosine of the full local vectors). Q = 0 returns [].
        """
        vecs = _check_vectors("element query vectors", vectors, 2)  # (Q, D)
        use_prefetch = self._use_prefetch(use_prefetch)
        if limit_per_query < 1:
            raise ValueError(f"limit_per_query must be >= 1, got {limit_per_query}")
        if vecs.shape[0] == 0:
            return []
        flt = _exclude_filter(exclude_note_id)
        requests = [self._request("local", v, limit_per_query, flt, use_prefetch) for v in vecs]
        responses = self.client.query_batch_points(ELEMENTS, requests=requests)
        out: list[list[ElementHit]] = []
        for res in responses:
            hits = []
            for p in res.points:
                pl = p.payload or {}
                hits.append(ElementHit(pl["note_id"], ElementKind(pl["kind"]), pl["index"], float(p.score),
                                       pl.get("image_index"), _box(pl.get("box")), pl.get("text"),
                                       _pdq_from_payload(pl)))
            out.append(hits)
        return out

    def search_pdq(self, bits: PdqHash | np.ndarray, max_distance: int = 31, limit: int = 10,
                   exclude_note_id: str | None = None) -> list[PdqHit]:
        """Stored images whose PDQ hash is within `max_distance` bits of `bits` ((256,) 0/1), nearest first.

        Quality is reported, not filtered: the caller applies `pdq_min_quality` to both sides.
        """
        arr = bits.bits if isinstance(bits, PdqHash) else np.asarray(bits)
        if arr.shape != (PDQ_BITS,):
            raise ValueError(f"PDQ bits must have shape ({PDQ_BITS},), got {arr.shape}")
        if not 0 <= max_distance <= PDQ_BITS:
            raise ValueError(f"max_distance must be in [0, {PDQ_BITS}], got {max_distance}")
        res = self.client.query_points(
            ELEMENTS, query=arr.astype(np.float32).tolist(), using=PDQ_VECTOR, limit=limit,
            query_filter=_exclude_filter(exclude_note_id), score_threshold=max_distance + 0.5, with_payload=True,
        )
        hits = []
        for p in res.points:
            distance = int(round(p.score))
            if distance <= max_distance:
                pl = p.payload or {}
                hits.append(PdqHit(pl["note_id"], pl["index"], pl.get("image_index"), distance,
                                   int(pl.get("pdq_quality") or 0)))
        return hits
