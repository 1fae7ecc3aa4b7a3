"""RemoteClient: UniNoteClient's methods and typed results over the HTTP API (`uninote serve`).

    from app.client import UniNoteClient
    with UniNoteClient.connect("http://matcher:8080", api_key) as client:
        report = client.check({"note_id": "q1", "title": "...", "images": ["/local/photo.jpg"]})  # AuditReport
        client.banks.check(note)                                   # BankCheck: hits per bank, open library

Notes are given as in-process (a Note or a notes.jsonl-style dict, image paths on *this* machine): the
client uploads the image files and the server never sees a path. Every call has a timeout (timeout_s);
connection errors and 5xx answers are retried (`retries` times, exponential backoff with jitter:
tenacity), then raised as ConnectionFailedError / ServerError. A 4xx is raised at once as the
RemoteError subclass for its status, with the server's message and the field it names.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from app.audit import AuditReport
from app.bank_exchange import ImportResult
from app.banks import BankCheck, EntryAdded
from app.client import NoteLike, as_note
from app.library import IndexResult
from app.records.audit_log import Action, AuditEntry
from app.records.banks import Bank, BankEntry, BankKind, DeliveryStatus, EntryOrigin, WebhookDelivery
from app.records.types import Decision, DecisionRecord, MatchRecord

INDEX_CHUNK = 32  # notes per POST /v1/notes (the server accepts up to API_MAX_BATCH_NOTES)


class RemoteError(Exception):
    """The API refused a call: `status`, the server's `error` message and the `field` it names (or None)."""

    def __init__(self, status: int, error: str, field: str | None = None):
        self.status, self.error, self.field = status, error, field
        where = f" [{field}]" if field else ""
        super().__init__(f"HTTP {status}{where}: {error}")


class AuthenticationError(RemoteError):
    """401: no, an unknown or a revoked API key."""


class PermissionDeniedError(RemoteError, PermissionError):
    """403: the key lacks the scope of this call."""


class NotFoundError(RemoteError, LookupError):
    """404: no such note, match, bank or entry."""


class RejectedError(RemoteError, ValueError):
    """409 / 413 / 422: the request was refused as it is (bad field, over a limit, wrong model version)."""


class RateLimitedError(RemoteError):
    """429: over the key's rate limit; retry_after_s says when to try again."""

    def __init__(self, status: int, error: str, field: str | None, retry_after_s: float | None):
        super().__init__(status, error, field)
        self.retry_after_s = retry_after_s


class ServerError(RemoteError):
    """5xx, after the retries were spent."""


class ConnectionFailedError(RemoteError, ConnectionError):
    """The server could not be reached (or timed out), after the retries were spent."""


_BY_STATUS = {401: AuthenticationError, 403: PermissionDeniedError, 404: NotFoundError, 409: RejectedError,
              413: RejectedError, 422: RejectedError}


class _Retryable(Exception):
    def __init__(self, error: RemoteError):
        self.error = error


def _parse_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _build(cls, data: Mapping[str, Any], **convert):
    """A dataclass from its JSON form: known fields only, *_at fields parsed, `convert` per field."""
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        if f.name in convert and value is not None:
            value = convert[f.name](value)
        elif f.name.endswith("_at") and value is not None:
            value = _parse_time(value)
        kwargs[f.name] = value
    return cls(**kwargs)


class RemoteClient:
    """See the module docstring. url: the API's base URL; api_key: a key from `uninote key add`."""

    def __init__(self, url: str, api_key: str, *, timeout_s: float = 120.0, retries: int = 3, backoff_s: float = 0.5,
                 transport: httpx.BaseTransport | None = None):
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.url = url.rstrip("/")
        self.retries, self.backoff_s = retries, backoff_s
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s, transport=transport,
                                  headers={"Authorization": f"Bearer {api_key}", "User-Agent": "uninote-client/1"})
        self.banks = RemoteBanks(self)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "RemoteClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- transport ----------------------------------------------------------------------------------
    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One API call with retries; the decoded JSON (None for an empty answer). Raises RemoteError."""
        retrying = Retrying(stop=stop_after_attempt(self.retries + 1), reraise=True,
                            wait=wait_exponential_jitter(multiplier=self.backoff_s, max=10.0),
                            retry=retry_if_exception(lambda e: isinstance(e, _Retryable)))
        try:
            for attempt in retrying:
                with attempt:
                    return self._once(method, path, kwargs)
        except _Retryable as e:
            raise e.error from None

    def _once(self, method: str, path: str, kwargs: dict[str, Any]) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as e:
            raise _Retryable(ConnectionFailedError(0, f"cannot reach {self.url}: {type(e).__name__}: {e}")) from e
        if response.status_code < 400:
            if not response.content:
                return None
            return response.json() if "json" in response.headers.get("content-type", "") else response.text
        try:
            body = response.json()
            error, field = str(body.get("error", response.text)), body.get("field")
        except (ValueError, AttributeError):
            error, field = response.text[:500] or response.reason_phrase, None
        status = response.status_code
        if status >= 500:
            raise _Retryable(ServerError(status, error, field))
        if status == 429:
            retry_after = response.headers.get("Retry-After")
            raise RateLimitedError(status, error, field, float(retry_after) if retry_after else None)
        raise _BY_STATUS.get(status, RemoteError)(status, error, field)

    # ---- notes ----------------------------------------------------------------------------------------
    def index(self, notes: Iterable[NoteLike], *, force: bool = False) -> IndexResult:
        """Index notes (their image files are uploaded), INDEX_CHUNK notes a request. Raises ValueError
        naming a record that is not a valid Note, RemoteError."""
        batch = [as_note(n) for n in notes]
        result = IndexResult()
        for start in range(0, len(batch), INDEX_CHUNK):
            chunk = batch[start:start + INDEX_CHUNK]
            records, files = [], []
            for k, note in enumerate(chunk):
                names = []
                for i, path in enumerate(note.images):
                    name = f"{start + k}-{i}{Path(path).suffix.lower()}"
                    files.append(("images", (name, Path(path).read_bytes())))
                    names.append(name)
                records.append(_note_json(note, names))
            d = self.request("POST", "/v1/notes", params={"force": force},
                             data={"notes": json.dumps(records, ensure_ascii=False)}, files=files or None)
            result.merge(IndexResult(d["indexed"], d["skipped"], d["failed"]))
        return result

    def delete(self, note_id: str) -> None:
        """Remove a note's vectors and mark it deleted. Raises NotFoundError for a note never seen."""
        self.request("DELETE", f"/v1/notes/{note_id}")

    # ---- checking -------------------------------------------------------------------------------------
    def check(self, note: NoteLike, *, limit: int = 10, save: bool = True) -> AuditReport:
        """Audit a note against the library (and its banks: their hits are in the report's matches; see
        banks.check for them grouped). Raises ValueError for an invalid record, RemoteError."""
        return self.banks.check(note, limit=limit, save=save).report

    def check_many(self, notes: Iterable[NoteLike], *, limit: int = 10, save: bool = True) -> list[AuditReport]:
        """check() each note, in input order; every record is validated before any call."""
        batch = [as_note(n) for n in notes]
        return [self.check(n, limit=limit, save=save) for n in batch]

    # ---- reports and decisions ------------------------------------------------------------------------
    def get_matches(self, note_id: str) -> list[MatchRecord]:
        """Every recorded match involving the note, highest score first, each with its latest decision."""
        return [_match_record(m) for m in self.request("GET", f"/v1/notes/{note_id}/matches", params={"limit": 1000})]

    def record_decision(self, match_id: int, decision: Decision | str, moderator: str | None = None,
                        comment: str | None = None, *, add_to_bank: str | None = None) -> DecisionRecord:
        """Record a moderator's decision on a match (moderator default: the key's name); add_to_bank: also add
        the matched note to that bank (its look-back runs). Raises NotFoundError, RejectedError."""
        body = {"decision": Decision(decision).value if isinstance(decision, Decision) else decision,
                "moderator": moderator, "comment": comment, "add_to_bank": add_to_bank}
        d = self.request("POST", f"/v1/matches/{match_id}/decision", json=body)
        return _build(DecisionRecord, d["decision"], decision=Decision)

    def audit_log(self, action: Action | str | None = None, actor: str | None = None, offset: int = 0,
                  limit: int = 50) -> list[AuditEntry]:
        """One page of the audit log, newest first (admin scope)."""
        params = {k: v for k, v in {"action": action and Action(action).value, "actor": actor, "offset": offset,
                                    "limit": limit}.items() if v is not None}
        return [_build(AuditEntry, e, action=Action) for e in self.request("GET", "/v1/audit-log", params=params)]

    def health(self) -> dict[str, Any]:
        return self.request("GET", "/healthz")


class RemoteBanks:
    """app.banks.Banks over the API (same method names; `actor` is the API key)."""

    def __init__(self, client: RemoteClient):
        self._c = client

    def list(self) -> list[Bank]:
        return [_bank(b) for b in self._c.request("GET", "/v1/banks")]

    def get(self, name: str) -> Bank:
        return _bank(self._c.request("GET", f"/v1/banks/{name}"))

    def create(self, name: str, kind: BankKind | str = BankKind.RISK, action: str = "review", **settings: Any) -> Bank:
        body = {"name": name, "kind": BankKind(kind).value, "action": action, **settings}
        return _bank(self._c.request("POST", "/v1/banks", json=body))

    def update(self, name: str, **changes: Any) -> Bank:
        return _bank(self._c.request("PATCH", f"/v1/banks/{name}", json=changes))

    def delete(self, name: str) -> None:
        self._c.request("DELETE", f"/v1/banks/{name}")

    def entries(self, name: str, offset: int = 0, limit: int = 50) -> list[BankEntry]:
        rows = self._c.request("GET", f"/v1/banks/{name}/entries", params={"offset": offset, "limit": limit})
        return [_entry(e) for e in rows]

    def add_note(self, name: str, note_id: str, *, details: Mapping[str, Any] | None = None) -> EntryAdded:
        d = self._c.request("POST", f"/v1/banks/{name}/entries", json={"note_id": note_id, "details": dict(details or {})})
        return _entry_added(d)

    def remove_entry(self, name: str, entry_id: int) -> BankEntry:
        return _entry(self._c.request("DELETE", f"/v1/banks/{name}/entries/{entry_id}"))

    def deliveries(self, name: str, offset: int = 0, limit: int = 50) -> list[WebhookDelivery]:
        rows = self._c.request("GET", f"/v1/banks/{name}/deliveries", params={"offset": offset, "limit": limit})
        return [_build(WebhookDelivery, r | {"payload": {}}, status=DeliveryStatus) for r in rows]

    def check(self, note: NoteLike, *, limit: int = 10, save: bool = True) -> BankCheck:
        """Audit a note against the library and its banks (app.banks.Banks.check)."""
        note = as_note(note)
        names = [f"{i}{Path(p).suffix.lower()}" for i, p in enumerate(note.images)]
        files = [("images", (n, Path(p).read_bytes())) for n, p in zip(names, note.images)]
        d = self._c.request("POST", "/v1/check", params={"save": save, "limit": limit},
                            data={"note": json.dumps(_note_json(note, names), ensure_ascii=False)}, files=files or None)
        return BankCheck.from_dict(d)

    def export(self, name: str) -> dict[str, Any]:
        return self._c.request("GET", f"/v1/banks/{name}/export")

    def import_file(self, doc: Mapping[str, Any], *, name: str | None = None) -> ImportResult:
        params = {"name": name} if name else {}
        body = json.dumps(doc).encode("utf-8")
        return _build(ImportResult, self._c.request("POST", "/v1/banks/import", params=params,
                                                    files={"file": ("bank.json", body)}))

    def import_pdq(self, name: str, text: str) -> ImportResult:
        return _build(ImportResult, self._c.request("POST", f"/v1/banks/{name}/signals",
                                                    files={"file": ("hashes.txt", text.encode("utf-8"))}))


def _note_json(note, image_names: list[str]) -> dict[str, Any]:
    return note.model_dump(mode="json") | {"images": image_names}


def _match_record(d: Mapping[str, Any]) -> MatchRecord:
    return _build(MatchRecord, d, decision=Decision)


def _bank(d: Mapping[str, Any]) -> Bank:
    return _build(Bank, d, kind=BankKind)


def _entry(d: Mapping[str, Any]) -> BankEntry:
    return _build(BankEntry, d, origin=EntryOrigin)


def _entry_added(d: Mapping[str, Any]) -> EntryAdded:
    return _build(EntryAdded, d, entry=_entry)
