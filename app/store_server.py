"""The qdrant-client engine of the store contract (app/store_types.py): a Qdrant server or cluster
(`QDRANT_URL`), or qdrant-client's local mode (test oracle; the source of `uninote store migrate`).

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
Local mode is exact brute force, and its prefetch re-scoring runs in Python, so there one full-dim pass is
the default: same answer, 4-6x faster (StoreConfig.prefetch overrides).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from qdrant_client import QdrantClient, models

from app.image_hashes import PDQ_BITS, PdqHash
from app.settings import Settings
from app.store_types import (ELEMENTS, HIT_FIELDS, NOTES, PDQ_HIT_FIELDS, PDQ_VECTOR, CollectionsMissingError,
                             ElementHit, GlobalHit,
                             NoteVectors, PayloadError, PdqHit, StoreConfig, StoredElement, StoredNote, StoreLockedError,
                             check_limit, check_vectors, element_hit, element_ids_of, note_point_id, note_points,
                             pdq_bits, pdq_hits, physical_name, prefix_and_full, stage_name, stored_element)
from encoder.types import EncodedNote, matryoshka_prefix

_SCROLL_PAGE = 256


def _note_filter(note_id: str) -> models.Filter:
    return models.Filter(must=[models.FieldCondition(key="note_id", match=models.MatchValue(value=note_id))])


def _search_filter(exclude_note_id: str | None, only: Sequence[str] | None = None) -> models.Filter | None:
    """must_not note_id == exclude; must note_id in only (an empty `only` matches nothing)."""
    must_not = [] if exclude_note_id is None else [
        models.FieldCondition(key="note_id", match=models.MatchValue(value=exclude_note_id))]
    must = [] if only is None else [models.FieldCondition(key="note_id", match=models.MatchAny(any=list(only)))]
    if not must and not must_not:
        return None
    return models.Filter(must=must or None, must_not=must_not or None)


class QdrantStore:
    """Notes and local elements in Qdrant through qdrant-client (a server, or local mode); see the module
    docstring.

    Writes go to the physical collections of `EncodedNote.model_version`; reads and searches go through
    the `notes`/`elements` aliases (the active version).
    """

    engine = "qdrant-client"

    def __init__(self, client: QdrantClient, config: StoreConfig | None = None, is_local: bool | None = None):
        self.client = client
        self.config = config or StoreConfig()
        self.is_local = is_local if is_local is not None else type(client._client).__name__ == "QdrantLocal"
        self._ensured: set[str] = set()
        self.prefetch_default = self.config.prefetch if self.config.prefetch is not None else not self.is_local

    # ---- opening -------------------------------------------------------------------------------------
    @classmethod
    def from_settings(cls, settings: Settings) -> "QdrantStore":
        """A server client when `settings.qdrant_url` is set, else qdrant-client local mode at
        `resolved_qdrant_path` (an oracle for tests, and what `uninote store migrate` reads; the app's
        embedded engine is Edge, see app.store.open_store).

        Raises StoreLockedError when another process holds the local folder.
        """
        config = StoreConfig.from_settings(settings)
        if settings.qdrant_url:
            client = QdrantClient(url=settings.qdrant_url, api_key=settings.qdrant_api_key)
            return cls(client, config, is_local=False)
        return cls.open_local(settings.resolved_qdrant_path, config)

    @classmethod
    def open_local(cls, path, config: StoreConfig | None = None) -> "QdrantStore":
        """qdrant-client local mode at `path`. Raises StoreLockedError when another process holds it."""
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
            hnsw_config=models.HnswConfigDiff(m=self.config.hnsw_m, ef_construct=self.config.hnsw_ef_construct)
            if prefix else None,
        )

    def ensure_collections(self, version: str, dims: Sequence[int]) -> None:
        """Create `notes__<version>` and `elements__<version>` if missing (dims: the encoder's Matryoshka
        dims, ascending, last = full dim D). When no `notes` alias exists yet, point the aliases at this
        version, so the first index is searchable at once. Raises ValueError for a bad version or dims.
        """
        prefix, full = prefix_and_full(dims, self.config.prefix_dim)
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
        Raises ValueError for vectors of the wrong shape, NaN, a pdq list longer than the images, or a
        payload that is not JSON. Stale elements are found from the note's `element_keys` payload; a
        process killed between the element and note writes can leave extra elements behind, which
        `delete_note` (a filter) removes.
        """
        notes_name, elements_name = self._require(encoded.model_version)
        note_id = encoded.note_id
        try:
            write = note_points(encoded, pdq, payload, self.config.prefix_dim)
        except PayloadError:
            self._delete_in(notes_name, elements_name, note_id, swallow=True)
            raise
        points = [models.PointStruct(id=p.id, vector=p.vectors, payload=p.payload) for p in write.elements]
        note_point = models.PointStruct(id=write.note.id, vector=write.note.vectors, payload=write.note.payload)
        seen = {p.id for p in write.elements}
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
        return set(element_ids_of(note_id, keys))

    def set_note_payload(self, note_id: str, values: dict[str, Any]) -> bool:
        """Merge `values` into the stored note point's payload (active version). Returns whether it exists."""
        if not self.client.retrieve(NOTES, ids=[note_point_id(note_id)]):
            return False
        self.client.set_payload(NOTES, payload=values, points=[note_point_id(note_id)], wait=True)
        return True

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
            elements += [stored_element(r.payload or {}) for r in records]
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
                target.elements.append(stored_element(p))
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
        check_limit("limit", limit)
        records, next_offset = self.client.scroll(
            NOTES, limit=limit, offset=offset, with_payload=["note_id"], with_vectors=False
        )
        return [r.payload["note_id"] for r in records], (None if next_offset is None else str(next_offset))

    def scroll_points(self, version: str, which: str, offset: str | None = None, limit: int = 256,
                      ) -> tuple[list[tuple[str, dict[str, list[float]], dict[str, Any]]], str | None]:
        """One page of a version's raw points (which = NOTES or ELEMENTS): (id, vectors, payload) triples and
        the next cursor (None at the end). What `uninote store migrate` copies."""
        records, next_offset = self.client.scroll(physical_name(which, version), limit=limit, offset=offset,
                                                  with_payload=True, with_vectors=True)
        rows = [(str(r.id), {k: list(v) for k, v in (r.vector or {}).items()}, dict(r.payload or {}))
                for r in records]
        return rows, (None if next_offset is None else str(next_offset))

    def points(self, version: str, which: str, ids: Sequence[str]) -> list[tuple[str, dict[str, list[float]], dict[str, Any]]]:
        """Raw (id, vectors, payload) of the given point ids of a version's collection (absent ids left out)."""
        if not ids:
            return []
        records = self.client.retrieve(physical_name(which, version), ids=list(ids), with_payload=True,
                                       with_vectors=True)
        return [(str(r.id), {k: list(v) for k, v in (r.vector or {}).items()}, dict(r.payload or {})) for r in records]

    def count_in(self, version: str, which: str) -> int:
        """Points in a version's physical collection (which = NOTES or ELEMENTS)."""
        return self.client.count(physical_name(which, version), exact=True).count

    # ---- search --------------------------------------------------------------------------------------
    def _use_prefetch(self, use_prefetch: bool | None) -> bool:
        return self.prefetch_default if use_prefetch is None else use_prefetch

    def _params(self) -> models.SearchParams | None:
        if self.is_local or (not self.config.exact and self.config.hnsw_ef is None):
            return None
        return models.SearchParams(exact=self.config.exact, hnsw_ef=self.config.hnsw_ef)

    def _request(self, kind: str, vector: np.ndarray, limit: int, flt: models.Filter | None,
                 use_prefetch: bool, with_payload: bool | list[str] = True) -> models.QueryRequest:
        dim = vector.shape[0]
        prefetch = None
        if use_prefetch and self.config.prefix_dim < dim:
            candidates = self.config.prefetch_limit if kind == "global" else self.config.element_prefetch_limit
            prefetch = models.Prefetch(
                query=matryoshka_prefix(vector, self.config.prefix_dim).tolist(),
                using=f"{kind}_{self.config.prefix_dim}",
                limit=max(candidates, limit),
                filter=flt,
                params=self._params(),
            )
        return models.QueryRequest(prefetch=prefetch, query=vector.tolist(), using=f"{kind}_{dim}",
                                   filter=flt, limit=limit, with_payload=with_payload, params=self._params())

    def search_global(self, vector: np.ndarray, limit: int = 10, exclude_note_id: str | None = None,
                      use_prefetch: bool | None = None, only: Sequence[str] | None = None) -> list[GlobalHit]:
        """Notes nearest a global vector (D,) float32, best first (score = cosine of the full vectors).

        use_prefetch: True = prefix-vector candidates (prefetch_limit of them) re-scored with the full
        vector; False = the full vector alone; None = the store's default (StoreConfig.prefetch).
        exclude_note_id: leave this note out (self-match). only: search just these note ids (a payload
        filter; empty = no hits). GlobalHit.stage says which route ran.
        """
        vec = check_vectors("global query vector", vector, 1)  # (D,)
        use_prefetch = self._use_prefetch(use_prefetch)
        check_limit("limit", limit)
        if only is not None and not only:
            return []
        req = self._request("global", vec, limit, _search_filter(exclude_note_id, only), use_prefetch)
        res = self.client.query_points(NOTES, prefetch=req.prefetch, query=req.query, using=req.using,
                                       query_filter=req.filter, limit=limit, with_payload=True, search_params=req.params)
        stage = stage_name("global", vec.shape[0], self.config.prefix_dim, use_prefetch)
        return [GlobalHit(p.payload["note_id"], float(p.score), p.payload.get("title", ""), stage, dict(p.payload))
                for p in res.points]

    def search_elements(self, vectors: np.ndarray, limit_per_query: int = 10, exclude_note_id: str | None = None,
                        use_prefetch: bool | None = None, only: Sequence[str] | None = None,
                        details: bool = True) -> list[list[ElementHit]]:
        """For each query element (Q, D) float32, the stored elements nearest it, best first; one batch call
        (query_batch_points). use_prefetch, exclude_note_id and only as in search_global.

        details: False = light hits (note_id, kind, index, score; the rest None), what `check` ranks by.
        Returns Q lists of ElementHit (score = cosine of the full local vectors). Q = 0 returns [].
        """
        vecs = check_vectors("element query vectors", vectors, 2)  # (Q, D)
        use_prefetch = self._use_prefetch(use_prefetch)
        check_limit("limit_per_query", limit_per_query)
        if vecs.shape[0] == 0:
            return []
        if only is not None and not only:
            return [[] for _ in range(vecs.shape[0])]
        flt = _search_filter(exclude_note_id, only)
        with_payload = True if details else list(HIT_FIELDS)
        requests = [self._request("local", v, limit_per_query, flt, use_prefetch, with_payload) for v in vecs]
        responses = self.client.query_batch_points(ELEMENTS, requests=requests)
        return [[element_hit(p.payload or {}, p.score) for p in res.points] for res in responses]

    def search_pdq(self, bits: PdqHash | np.ndarray, max_distance: int = 31, limit: int = 10,
                   exclude_note_id: str | None = None) -> list[PdqHit]:
        """Stored images whose PDQ hash is within `max_distance` bits of `bits` ((256,) 0/1), nearest first.

        Quality is reported, not filtered: the caller applies `pdq_min_quality` to both sides.
        """
        return self.search_pdq_batch([bits], max_distance, limit, exclude_note_id)[0]

    def search_pdq_batch(self, hashes: Sequence[PdqHash | np.ndarray], max_distance: int = 31, limit: int = 10,
                         exclude_note_id: str | None = None) -> list[list[PdqHit]]:
        """search_pdq for several hashes in one call (query_batch_points). Returns one list of PdqHit per hash,
        in order; no hashes returns []."""
        arrays = [pdq_bits(bits, max_distance) for bits in hashes]
        check_limit("limit", limit)
        if not arrays:
            return []
        requests = [models.QueryRequest(query=arr.astype(np.float32).tolist(), using=PDQ_VECTOR, limit=limit,
                                        filter=_search_filter(exclude_note_id), score_threshold=max_distance + 0.5,
                                        with_payload=list(PDQ_HIT_FIELDS), params=self._params()) for arr in arrays]
        responses = self.client.query_batch_points(ELEMENTS, requests=requests)
        return [pdq_hits([(p.score, p.payload or {}) for p in res.points], max_distance) for res in responses]
