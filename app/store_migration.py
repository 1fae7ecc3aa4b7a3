"""`uninote store migrate`: copy a store written by qdrant-client's local mode into Qdrant Edge.

Every version's notes, each with the elements its `element_keys` name (vectors and payloads, same point ids),
are copied into a new Edge
folder beside the old one, the counts are compared, the active version is carried over, and only then are
the folders swapped: the old one is kept as `<folder>.local-mode-<UTC time>` (delete it once satisfied).
A failure leaves the old folder as it was and removes the half-built copy.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from app.store_edge import EdgeStore, is_local_mode_folder
from app.store_server import QdrantStore
from app.store_types import (ELEMENTS, NOTES, PointWrite, StoreConfig, StoreOpenError, element_ids_of,
                             physical_name)

PAGE = 256


class MigrationError(RuntimeError):
    """The copy could not be completed or verified (the old folder is untouched)."""


@dataclass
class MigrationReport:
    """What was copied: per version (notes, elements); where the old folder was kept."""

    counts: dict[str, tuple[int, int]] = field(default_factory=dict)
    orphans: dict[str, int] = field(default_factory=dict)  # elements whose note was never written (a crash)
    active: str | None = None
    backup: Path | None = None

    def lines(self) -> list[str]:
        out = [f"version {v}: {n} notes, {e} elements copied and verified" for v, (n, e) in self.counts.items()]
        out += [f"version {v}: {k} elements without their note (left by a crash) not copied"
                for v, k in self.orphans.items() if k]
        out.append(f"active version: {self.active}")
        out.append(f"the old local-mode folder is kept at {self.backup} (delete it once satisfied)")
        return out


def _dims_of(old: QdrantStore, version: str) -> tuple[int, int]:
    """(prefix, full) dims of a version, from its notes collection's named vectors `global_<dim>`."""
    vectors = old.client.get_collection(physical_name(NOTES, version)).config.params.vectors
    dims = sorted(int(name.split("_", 1)[1]) for name in vectors if name.startswith("global_"))
    if len(dims) != 2:
        raise MigrationError(f"version {version!r}: expected vectors global_<prefix> and global_<D>, got {sorted(vectors)}")
    return dims[0], dims[1]


def _copy(old: QdrantStore, new: EdgeStore, version: str) -> int:
    """Every note of `version` with the elements its `element_keys` name, one Edge operation per note.
    Returns the elements copied."""
    offset, copied = None, 0
    while True:
        rows, offset = old.scroll_points(version, NOTES, offset, PAGE)
        for pid, vectors, payload in rows:
            note_id = payload["note_id"]
            elements = old.points(version, ELEMENTS, element_ids_of(note_id, payload.get("element_keys") or []))
            new.write_note_points(version, PointWrite(pid, vectors, payload),
                                  [PointWrite(eid, evec, epay) for eid, evec, epay in elements])
            copied += len(elements)
        if offset is None:
            return copied


def migrate_local_store(path: Path, config: StoreConfig | None = None) -> MigrationReport:
    """Copy the local-mode store at `path` into Qdrant Edge in place (see the module docstring).

    Raises StoreOpenError when `path` is not a local-mode store, StoreLockedError when another process
    holds it, MigrationError when the counts differ (nothing changed then).
    """
    path = Path(path)
    if not is_local_mode_folder(path):
        raise StoreOpenError(f"{path} is not a store written by qdrant-client's local mode: nothing to migrate")
    config = config or StoreConfig()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.edge-migrating")
    backup = path.with_name(f"{path.name}.local-mode-{stamp}")
    shutil.rmtree(target, ignore_errors=True)
    report = MigrationReport(backup=backup)
    old = QdrantStore.open_local(path, config)
    try:
        new = EdgeStore(target, config)
        try:
            for version in old.versions():
                prefix, full = _dims_of(old, version)
                new.create_version(version, prefix, full)
                copied = _copy(old, new, version)
                want = (old.count_in(version, NOTES), copied)
                got = (new.count_in(version, NOTES), new.count_in(version, ELEMENTS))
                if got != want:
                    raise MigrationError(f"version {version!r}: copied {got[0]} notes / {got[1]} elements of "
                                         f"{want[0]} / {want[1]}; the old folder {path} is unchanged")
                report.counts[version] = got
                report.orphans[version] = old.count_in(version, ELEMENTS) - copied
            report.active = old.active_version()
            if report.active is not None:
                new.switch_alias(report.active)
            new.optimize()
        finally:
            new.close()
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    finally:
        old.close()
    path.rename(backup)
    target.rename(path)
    return report
