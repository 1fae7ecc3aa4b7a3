"""The hash chain of the audit log: each entry's `row_hash` is the SHA-256 of its content and the previous
entry's hash, so deleting, editing, inserting or reordering an entry breaks every link after it.

    row_hash = sha256_hex(canonical JSON of [prev_hash, id, created_at, actor, action, target, details])

`prev_hash` of the first entry is GENESIS_HASH. The canonical form survives the databases' own storage:
created_at as UTC ISO-8601 with microseconds; details with sorted keys and every number as a float's
repr (PostgreSQL's JSONB may print 1e16 as 10000000000000000; both hash the same). Kept apart from the
ORM rows (app/records/audit_log.py) because Alembic revision 0005 also uses it to chain the entries
written before the chain existed. Source: the usual tamper-evident log construction (e.g. RFC 6962's
hash of a predecessor; Schneier & Kelsey, "Secure audit logs", 1999).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any

GENESIS_HASH = "0" * 64  # prev_hash of the first entry
HASH_HEX_LEN = 64


def _canonical(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return repr(float(value))
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return str(value)


def utc_text(when: datetime) -> str:
    """A timestamp as UTC ISO-8601 with microseconds (naive values are taken as UTC)."""
    when = when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)
    return when.isoformat(timespec="microseconds")


def entry_hash(prev_hash: str, entry_id: int, created_at: datetime, actor: str, action: str, target: str | None,
               details: dict[str, Any] | None) -> str:
    """The 64-hex SHA-256 of one audit-log entry chained to `prev_hash`."""
    body = [prev_hash, int(entry_id), utc_text(created_at), actor, action, target, _canonical(details or {})]
    text = json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
