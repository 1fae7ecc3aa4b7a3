"""The one Library of a worker process (encoder, vector store, records), opened on first use.

A prefork worker opens it in the child process that runs tasks, never in the parent (the local-mode Qdrant
folder can be opened by one process only, and the encoder's towers are big). Tests and the in-process
(broker-less) mode hand in their own Library with `use_library`.
"""

from __future__ import annotations

import threading

from app.library import Library
from app.settings import Settings, get_settings

_library: Library | None = None
_owned = False  # opened here (closed by close_library) rather than handed in
_lock = threading.Lock()


def get_library(settings: Settings | None = None) -> Library:
    """This process's Library, opened from `settings` (default: get_settings()) on first call.
    Raises app.store.StoreLockedError when the local Qdrant folder is open in another process."""
    global _library, _owned
    with _lock:
        if _library is None:
            _library = Library.open(settings or get_settings())
            _owned = True
        return _library


def use_library(library: Library | None) -> None:
    """Make `library` the process's Library (None: forget it; the caller keeps ownership and closes it)."""
    global _library, _owned
    with _lock:
        _library, _owned = library, False


def close_library() -> None:
    """Close the Library if this module opened it (worker shutdown); forget it either way."""
    global _library, _owned
    with _lock:
        lib, owned = _library, _owned
        _library, _owned = None, False
    if lib is not None and owned:
        lib.close()
