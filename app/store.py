"""The vector store of indexed notes: one contract (app/store_types.py), two engines, chosen by settings.

- `QDRANT_PATH` (the embedded default): `EdgeStore`, Qdrant Edge in-process (app/store_edge.py);
- `QDRANT_URL`: `QdrantStore`, qdrant-client against a Qdrant server or cluster (app/store_server.py).
Callers open a store with `open_store(settings)` and use only the contract's methods; `VectorStore` names
the type both engines satisfy.
"""

from __future__ import annotations

from typing import Union

from app.settings import Settings
from app.store_edge import EdgeStore, StoreMigrationNeededError, is_local_mode_folder
from app.store_server import QdrantStore
from app.store_types import (ELEMENTS, NOTES, PDQ_VECTOR, POINT_NAMESPACE, CollectionsMissingError, ElementHit,
                             GlobalHit, NoteVectors, PayloadError, PdqHit, StoreConfig, StoredElement, StoredNote,
                             StoreLockedError, StoreOpenError, StoreWriteError, element_point_id, note_point_id,
                             physical_name)

VectorStore = Union[EdgeStore, QdrantStore]

__all__ = [
    "ELEMENTS", "NOTES", "PDQ_VECTOR", "POINT_NAMESPACE", "CollectionsMissingError", "EdgeStore", "ElementHit",
    "GlobalHit", "NoteVectors", "PayloadError", "PdqHit", "QdrantStore", "StoreConfig", "StoreLockedError",
    "StoreMigrationNeededError", "StoreOpenError", "StoreWriteError", "StoredElement", "StoredNote", "VectorStore",
    "element_point_id", "is_local_mode_folder", "note_point_id", "open_store", "physical_name",
]


def open_store(settings: Settings) -> VectorStore:
    """The store the settings describe: qdrant-client on a server when QDRANT_URL is set, else Qdrant Edge at
    `resolved_qdrant_path`. Raises StoreLockedError, StoreMigrationNeededError or StoreOpenError (Edge),
    each naming the folder."""
    if settings.qdrant_url:
        return QdrantStore.from_settings(settings)
    return EdgeStore.from_settings(settings)
