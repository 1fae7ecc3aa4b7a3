"""Exchanging banks between teams: a bank as a file (vectors with their model version, PDQ hashes,
metadata), and PDQ hash lists in the formats of Meta's HMA and ThreatExchange.

Bank file (JSON, `format` "uninote-bank", `format_version` 1):
    {"format": "uninote-bank", "format_version": 1, "model_version": "...", "dim": 512, "exported_at": "...",
     "bank": {"name", "kind", "action", "duplicate_threshold", "infringement_threshold", "description"},
     "entries": [{"note_id", "title", "details", "global": B64, "elements": [{"kind", "index", "image_index",
                  "box", "text", "vector": B64, "pdq_hex", "pdq_quality"}]},          # a note with vectors
                 {"pdq_hex", "pdq_quality", "details"}]}                             # a bare PDQ hash
B64 = base64 of the (dim,) float32 little-endian vector. Vectors only mean something to the weights that
made them, so a file with note entries is refused by a library of another model version, naming the
version the file needs. Imported notes are stored as `<bank>:<their note id>` (vectors written as they
are, a registry row with source `bank-import:<bank>`) and are bank entries only, never open-library notes.

PDQ hash lists (`parse_pdq_list`), detected from the content:
- python-threatexchange's local file exchange (LocalFileSignalExchangeAPI): one signal a line,
  `pdq <64 hex>` or a bare `<64 hex>`; other signal types are skipped;
- the PDQ hasher's CSV output: `<64 hex>,<quality>[,<file name>]`;
- HMA (OpenMediaMatch) signal JSON: `{"pdq": "<hex>"}` (the body of POST /bank/<name>/signal), a list of
  them, or bank content `{"id": ..., "signals": {"pdq": "<hex>"}}`;
- ThreatExchange Graph API threat descriptors: `{"data": [{"id", "type": "HASH_PDQ", "raw_indicator",
  "tags"}]}`.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from app.audit import ModelVersionMismatchError
from app.banks import Banks
from app.image_hashes import PdqHash
from app.notes import Note
from app.records import audit_log, banks as records, registry
from app.records.audit_log import Action
from app.records.banks import EntryOrigin, PDQ_HEX
from app.records.db import transaction
from encoder.types import ElementKind, EncodedNote, LocalVector

FORMAT = "uninote-bank"
FORMAT_VERSION = 1
_NOTE_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,200}$")
_PDQ_ANYWHERE = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass
class ImportResult:
    """added / unchanged: entries (note ids or PDQ hashes); skipped: what was not imported and why."""

    bank: str
    added: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


# ---- export ------------------------------------------------------------------------------------------------
def export_bank(banks: Banks, name: str) -> dict[str, Any]:
    """The bank as a JSON-able dict (module docstring). Note entries whose vectors are gone (the note was
    deleted since) are left out. Raises RecordNotFoundError('bank', name)."""
    library = banks.client.library
    bank = banks.get(name)
    with banks.sessions() as s:
        entries = records.all_entries(s, name)
    dim = library.encoder.dims[-1]
    note_ids = [e.note_id for e in entries if e.note_id]
    with banks.store_lock:
        vectors = library.store.note_vectors(note_ids, dim) if note_ids else {}
    out = []
    for e in entries:
        if e.note_id is None:
            out.append({"pdq_hex": e.pdq_hex, "pdq_quality": e.pdq_quality, "details": e.details})
            continue
        v = vectors.get(e.note_id)
        if v is None:
            continue
        out.append({
            "note_id": e.note_id, "title": v.payload.get("title", ""), "details": e.details,
            "global": _b64(v.global_vector),
            "elements": [{"kind": el.kind.value, "index": el.index, "image_index": el.image_index,
                          "box": list(el.box) if el.box is not None else None, "text": el.text,
                          "vector": _b64(vec), "pdq_hex": el.pdq.to_hex() if el.pdq else None,
                          "pdq_quality": el.pdq.quality if el.pdq else None}
                         for el, vec in zip(v.elements, v.element_vectors)],
        })
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "model_version": library.encoder.model_version,
        "dim": dim, "exported_at": datetime.now(timezone.utc).isoformat(),
        "bank": {"name": bank.name, "kind": bank.kind.value, "action": bank.action,
                 "duplicate_threshold": bank.duplicate_threshold,
                 "infringement_threshold": bank.infringement_threshold, "description": bank.description},
        "entries": out,
    }


def _b64(vector: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def _vector(text: Any, dim: int, where: str) -> np.ndarray:
    try:
        raw = base64.b64decode(text, validate=True)
    except (ValueError, TypeError):
        raise ValueError(f"{where}: not base64") from None
    if len(raw) != 4 * dim:
        raise ValueError(f"{where}: {len(raw) // 4} floats, expected {dim}")
    vec = np.frombuffer(raw, dtype="<f4").astype(np.float32)  # (D,)
    if not np.all(np.isfinite(vec)):
        raise ValueError(f"{where}: not finite")
    return vec


# ---- import ------------------------------------------------------------------------------------------------
def import_bank(banks: Banks, doc: Mapping[str, Any], *, actor: str, name: str | None = None) -> ImportResult:
    """Import a bank file (export_bank's dict) into bank `name` (default: the file's bank name; created
    with the file's settings when missing). Raises ModelVersionMismatchError when the file holds vectors
    of another model version than this library's, ValueError naming the first bad field."""
    if not isinstance(doc, Mapping) or doc.get("format") != FORMAT:
        raise ValueError(f"format: not a UniNote bank file (expected \"format\": \"{FORMAT}\")")
    if doc.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"format_version: this UniNote reads version {FORMAT_VERSION}, got {doc.get('format_version')!r}")
    entries = doc.get("entries")
    meta = doc.get("bank")
    if not isinstance(entries, list) or not isinstance(meta, Mapping):
        raise ValueError("entries: expected a list (and bank: an object)")
    library = banks.client.library
    ours, theirs = library.encoder.model_version, doc.get("model_version")
    has_vectors = any(isinstance(e, Mapping) and e.get("global") is not None for e in entries)
    if has_vectors and theirs != ours:
        raise ModelVersionMismatchError(
            f"model_version: this bank file holds vectors of model version {theirs!r} and needs a library of "
            f"that version; this library is indexed with {ours!r} (re-export the bank from a library of {ours!r})")
    dim = library.encoder.dims[-1]
    if has_vectors and doc.get("dim") != dim:
        raise ValueError(f"dim: the file's vectors have dim {doc.get('dim')!r}, this library's {dim}")
    target = name or str(meta.get("name") or "")
    records.check_bank_name(target)
    with banks.sessions() as s:
        exists = records.get_bank(s, target) is not None
    if not exists:
        banks.create(target, meta.get("kind", "risk"), meta.get("action") or "review", actor=actor,
                     duplicate_threshold=meta.get("duplicate_threshold"),
                     infringement_threshold=meta.get("infringement_threshold"),
                     description=str(meta.get("description") or ""))
    result = ImportResult(target)
    for i, e in enumerate(entries):
        where = f"entries[{i}]"
        if not isinstance(e, Mapping):
            raise ValueError(f"{where}: expected an object")
        if e.get("global") is None:
            with transaction(banks.sessions) as s:
                _add_pdq(s, result, target, e.get("pdq_hex"), e.get("pdq_quality"), dict(e.get("details") or {}),
                         actor, where)
        else:
            _add_note(banks, result, target, e, dim, actor, where)
    _log_import(banks, actor, target, result, source=f"bank file of {theirs!r}")
    return result


def _add_note(banks: Banks, result: ImportResult, bank: str, e: Mapping[str, Any], dim: int, actor: str,
              where: str) -> None:
    library = banks.client.library
    source_id = str(e.get("note_id") or "")
    note_id = f"{bank}:{source_id}"
    if not _NOTE_ID.match(note_id):
        raise ValueError(f"{where}.note_id: {source_id!r} is not a usable note id")
    global_vector = _vector(e.get("global"), dim, f"{where}.global")
    locals_, pdq = [], {}
    for j, el in enumerate(e.get("elements") or []):
        w = f"{where}.elements[{j}]"
        try:
            kind = ElementKind(el["kind"])
            index = int(el["index"])
            box = tuple(float(x) for x in el["box"]) if el.get("box") is not None else None
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{w}: expected kind, index (and box as 4 numbers)") from None
        locals_.append(LocalVector(kind, index, _vector(el.get("vector"), dim, f"{w}.vector"),
                                   el.get("image_index"), box, el.get("text")))
        if kind == ElementKind.IMAGE and el.get("pdq_hex"):
            pdq[index] = PdqHash.from_hex(str(el["pdq_hex"]), int(el.get("pdq_quality") or 0))
    n_images = sum(1 for lv in locals_ if lv.kind == ElementKind.IMAGE)
    hashes = [pdq.get(k) for k in range(n_images)]
    title = str(e.get("title") or "")[:1000] or f"imported into {bank}"
    encoded = EncodedNote(note_id, global_vector, locals_, library.encoder.model_version)
    note = Note(note_id=note_id, title=title, metadata={"bank_import": bank, "source_note_id": source_id})
    with banks.sessions() as s:
        rec = registry.get_note_record(s, note_id)
    if rec is None or rec.status.value != "indexed":
        with banks.store_lock:
            library.write_vectors(note, encoded, hashes, {"title": title, "bank_import": bank},
                                  registry.content_hash(note), f"bank-import:{bank}")
    with transaction(banks.sessions) as s:
        _, created = records.add_entry(s, bank, origin=EntryOrigin.IMPORT, added_by=actor, note_id=note_id,
                                       details=dict(e.get("details") or {}) | {"source_note_id": source_id})
    (result.added if created else result.unchanged).append(note_id)


def _add_pdq(session, result: ImportResult, bank: str, pdq_hex: Any, quality: Any,
             details: dict[str, Any], actor: str, where: str) -> None:
    if not isinstance(pdq_hex, str) or not PDQ_HEX.match(pdq_hex.strip().lower()):
        raise ValueError(f"{where}.pdq_hex: expected 64 hex characters, got {str(pdq_hex)[:80]!r}")
    if quality is not None and (isinstance(quality, bool) or not isinstance(quality, int) or not 0 <= quality <= 100):
        raise ValueError(f"{where}.pdq_quality: expected an integer 0-100 or null, got {quality!r}")
    entry, created = records.add_entry(session, bank, origin=EntryOrigin.PDQ, added_by=actor, pdq_hex=pdq_hex,
                                       pdq_quality=quality, details=details)
    (result.added if created else result.unchanged).append(entry.pdq_hex)


def _log_import(banks: Banks, actor: str, bank: str, result: ImportResult, source: str) -> None:
    with transaction(banks.sessions) as s:
        audit_log.append(s, actor, Action.BANK, f"bank:{bank}", {
            "change": "import", "source": source, "added": len(result.added), "unchanged": len(result.unchanged),
            "skipped": len(result.skipped)})


# ---- PDQ hash lists ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PdqSignal:
    pdq_hex: str
    quality: int | None
    details: dict[str, Any]


def parse_pdq_list(text: str) -> tuple[list[PdqSignal], list[str]]:
    """PDQ signals of a hash list in one of the formats of the module docstring, and what was skipped
    (other signal types), by line or item. Raises ValueError naming the line or item that is malformed."""
    stripped = text.lstrip("\ufeff").strip()
    if not stripped:
        raise ValueError("file: empty hash list")
    if stripped[0] in "[{":
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError:
            data = None
        if data is not None:
            return _from_json(data)
    signals, skipped = [], []
    for lineno, line in enumerate(stripped.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line[0] in "[{":
            items, skip = _from_json(_json_line(line, lineno))
            signals += items
            skipped += skip
            continue
        if "," in line:  # PDQ hasher CSV: hash,quality[,filename]
            parts = [p.strip() for p in line.split(",")]
            if _PDQ_ANYWHERE.match(parts[0]):
                quality = _quality(parts[1], f"line {lineno}") if len(parts) > 1 and parts[1] else None
                details = {"file": parts[2]} if len(parts) > 2 and parts[2] else {}
                signals.append(PdqSignal(parts[0].lower(), quality, details))
                continue
        kind, _, value = line.partition(" ")
        if not value and _PDQ_ANYWHERE.match(kind):
            signals.append(PdqSignal(kind.lower(), None, {}))
        elif kind.lower() == "pdq" and _PDQ_ANYWHERE.match(value.strip()):
            signals.append(PdqSignal(value.strip().lower(), None, {}))
        elif value and kind.lower() != "pdq":
            skipped.append(f"line {lineno}: signal type {kind!r} is not PDQ")
        else:
            raise ValueError(f"line {lineno}: expected 'pdq <64 hex>', '<64 hex>' or '<64 hex>,<quality>'")
    return signals, skipped


def _json_line(line: str, lineno: int) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"line {lineno}: not JSON: {e.msg}") from None


def _quality(value: Any, where: str) -> int:
    try:
        q = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: quality {value!r} is not an integer") from None
    if not 0 <= q <= 100:
        raise ValueError(f"{where}: quality {q} is not in 0-100")
    return q


def _from_json(data: Any) -> tuple[list[PdqSignal], list[str]]:
    if isinstance(data, Mapping) and isinstance(data.get("data"), list):  # ThreatExchange threat descriptors
        items = data["data"]
    elif isinstance(data, list):
        items = data
    else:
        items = [data]
    signals, skipped = [], []
    for i, item in enumerate(items):
        where = f"item {i}"
        if not isinstance(item, Mapping):
            raise ValueError(f"{where}: expected an object")
        if "raw_indicator" in item or "type" in item:  # ThreatExchange descriptor
            if str(item.get("type", "")).upper() != "HASH_PDQ":
                skipped.append(f"{where}: ThreatExchange type {item.get('type')!r} is not HASH_PDQ")
                continue
            value = item.get("raw_indicator")
            details = {k: item[k] for k in ("id", "tags", "description") if k in item}
        else:  # HMA: {"pdq": ...} or bank content {"id", "signals": {"pdq": ...}}
            signals_of = item.get("signals") if isinstance(item.get("signals"), Mapping) else item
            value = signals_of.get("pdq")
            details = {"id": item["id"]} if "id" in item else {}
            if value is None:
                skipped.append(f"{where}: no PDQ signal (types {sorted(signals_of)})")
                continue
        if not isinstance(value, str) or not _PDQ_ANYWHERE.match(value.strip()):
            raise ValueError(f"{where}: PDQ hash must be 64 hex characters, got {str(value)[:80]!r}")
        quality = _quality(item["quality"], where) if item.get("quality") is not None else None
        signals.append(PdqSignal(value.strip().lower(), quality, details))
    return signals, skipped


def import_pdq_list(banks: Banks, bank: str, text: str, *, actor: str) -> ImportResult:
    """Add every PDQ hash of a hash list (parse_pdq_list) to an existing bank. Raises ValueError for a
    malformed list (nothing added), RecordNotFoundError('bank', name)."""
    banks.get(bank)
    signals, skipped = parse_pdq_list(text)
    result = ImportResult(bank, skipped=skipped)
    with transaction(banks.sessions) as s:  # one transaction: a list is imported whole or not at all
        for i, sig in enumerate(signals):
            _add_pdq(s, result, bank, sig.pdq_hex, sig.quality, sig.details, actor, f"signal {i}")
    _log_import(banks, actor, bank, result, source="PDQ hash list")
    return result
