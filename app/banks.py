"""Banks at work: check a note against the library and its banks, manage banks and their entries.

The HTTP API (app/api), the dashboard (app/dashboard/banks_page.py), the in-process client
(`UniNoteClient.banks`) and the remote client (over the API) all call `Banks`; the records live in
app/records/banks.py.

check (paper's online matching against a risk library; HMA's per-bank match results):
1. `Library.check(note, limit=ALL_CANDIDATES, save=False)`: every scored candidate of app.audit.check;
2. `group_matches`: each candidate that is an entry of an enabled bank and scores at/above the bank's
   infringement threshold (None = the library's in force) is a hit of that bank, with the bank's verdict;
   bare PDQ entries (hash lists) hit a query image within PDQ_MAX_DISTANCE (Meta's rule);
3. allow-lists: an allow-bank hit makes the query images it matches (image/crop evidence at/above the
   threshold, or a PDQ hit) "allowed" (the whole note when that one entry explains every query image, or
   the note has no images: a note that pairs a brand image with a stolen one is not allowed as a whole,
   however close its global vector). A flagged match (risk bank or open library) whose best image evidence
   is on an allowed image, and whose note score alone would not flag it, is suppressed, with the reason;
4. the open library: the other matches on library notes (not in an enabled bank, not imported), top `limit`;
5. the report (saved with save=True) holds the risk-bank hits and the open-library matches, best first.
   With no bank it equals Library.check(note, limit) exactly. `UniNoteClient.check` (in-process) and
   `RemoteClient.check` (HTTP, /v1/check) both return this report, so banks are honoured on every route. Saving also counts hits and queues
   the webhooks of the risk banks hit.
Candidates are those the library's global/element/PDQ searches find (app.audit.check); a bank entry that
no search reaches is not scored. `group_matches` is the one place that decides membership, so a store-side
bank filter can feed it later.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from app.audit import BOX_KEYS, CLEAR, DUPLICATE, IMAGE_KINDS, POSSIBLE_INFRINGEMENT, VERDICT_ORDER, AuditReport, Match
from app.image_hashes import PdqHash, pdq_hash
from app.notes import Note
from app.records import audit_log, banks as records, reports
from app.records.audit_log import Action
from app.records.banks import Bank, BankEntry, BankKind, EntryOrigin, WebhookDelivery
from app.records.db import transaction
from app.records.errors import RecordNotFoundError
from app.records.types import NoteStatus
from app.records import registry
from app.webhook_targets import check_webhook_url
from encoder.images import load_image

if TYPE_CHECKING:
    from app.client import UniNoteClient

log = logging.getLogger(__name__)

ALL_CANDIDATES = 100_000  # `limit` that keeps every scored candidate of app.audit.check
MATCH_EVENT = "bank.match"


# ---- results ----------------------------------------------------------------------------------------------
@dataclass
class SignalHit:
    """A bare PDQ entry of a bank within `distance` (Hamming, 0-256) of query image `image_index`."""

    entry_id: int
    pdq_hex: str
    image_index: int
    distance: int


@dataclass
class BankHits:
    """What one enabled bank matched: notes (Match, verdict by the bank's thresholds; entry ids by note id)
    and PDQ signals. verdict: the worst of them."""

    bank: str
    kind: str
    action: str
    verdict: str
    matches: list[Match] = field(default_factory=list)
    entry_ids: dict[str, int] = field(default_factory=dict)
    signals: list[SignalHit] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "BankHits":
        d = dict(d)
        d["matches"] = [Match.from_dict(m) for m in d.get("matches", [])]
        d["signals"] = [SignalHit(**s) for s in d.get("signals", [])]
        return cls(**d)


@dataclass
class Suppression:
    """A match an allow-list hit suppressed: on which note, by which allow bank and entry, and why."""

    note_id: str
    score: float
    allow_bank: str
    allow_entry_id: int
    reason: str


@dataclass
class BankCheck:
    """check() with banks: the report (saved with save=True; its matches are the risk-bank hits and the
    open-library matches), the hits per bank, the open library's matches and the suppressed ones."""

    report: AuditReport
    banks: list[BankHits]
    library: list[Match]
    suppressed: list[Suppression]

    def to_dict(self) -> dict[str, Any]:
        report = self.report.to_dict()
        boxes = {"banks": [asdict(b) for b in self.banks], "library": [asdict(m) for m in self.library]}
        for group in [m for b in boxes["banks"] for m in b["matches"]] + boxes["library"]:
            for e in group["evidence"]:
                for key in BOX_KEYS:
                    if e[key] is not None:
                        e[key] = list(e[key])
        return {"report": report, **boxes, "suppressed": [asdict(s) for s in self.suppressed]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "BankCheck":
        return cls(AuditReport.from_dict(d["report"]), [BankHits.from_dict(b) for b in d["banks"]],
                   [Match.from_dict(m) for m in d["library"]], [Suppression(**s) for s in d["suppressed"]])


@dataclass
class EntryAdded:
    """An entry added to a bank (created False: it was there already) and its look-back: report_id and
    verdict when it ran here, task_id when it was queued to a worker."""

    entry: BankEntry
    created: bool
    lookback_report_id: int | None = None
    lookback_verdict: str | None = None
    lookback_task_id: str | None = None


LookbackRunner = Callable[[str], "EntryAdded | dict[str, Any]"]
Notifier = Callable[[int], None]


# ---- grouping (one function; see the module docstring) ----------------------------------------------------
def _verdict(score: float, duplicate: float, infringement: float) -> str:
    if score >= duplicate:
        return DUPLICATE
    return POSSIBLE_INFRINGEMENT if score >= infringement else CLEAR


def _thresholds(bank: Bank, duplicate: float, infringement: float) -> tuple[float, float]:
    dup = bank.duplicate_threshold if bank.duplicate_threshold is not None else duplicate
    inf = bank.infringement_threshold if bank.infringement_threshold is not None else infringement
    return dup, min(inf, dup)


def _worst(verdicts) -> str:
    return max(verdicts, key=VERDICT_ORDER.__getitem__, default=CLEAR)


def _best_image_evidence(m: Match):
    images = [e for e in m.evidence if e.query_kind in IMAGE_KINDS]
    return max(images, key=lambda e: e.effective_score, default=None)


def group_matches(matches: Sequence[Match], members: Mapping[str, list[tuple[Bank, BankEntry]]],
                  imported: set[str], signal_hits: Sequence[tuple[Bank, BankEntry, int, int]],
                  n_query_images: int, duplicate: float, infringement: float,
                  limit: int) -> tuple[list[Match], list[BankHits], list[Match], list[Suppression]]:
    """Sort scored matches into banks, the open library and suppressed ones (module docstring, steps 2-5).

    matches: every scored candidate, best first; members: note id -> (bank, entry) pairs (any bank);
    imported: note ids that are imported bank entries; signal_hits: (bank, entry, query image index,
    Hamming distance) of PDQ entries; duplicate / infringement: the library's thresholds in force.
    Returns (report matches best first, hits per bank by name, open-library matches, suppressed).
    """
    hits: dict[str, BankHits] = {}
    bank_of: dict[str, Bank] = {}
    allowed_images: dict[int, tuple[Bank, int, float]] = {}  # query image -> (allow bank, entry id, score)
    whole_note: tuple[Bank, int, float] | None = None

    def bank_hits(bank: Bank) -> BankHits:
        bank_of[bank.name] = bank
        return hits.setdefault(bank.name, BankHits(bank.name, bank.kind.value, bank.action, CLEAR))

    for bank, entry, image_index, distance in signal_hits:
        h = bank_hits(bank)
        h.signals.append(SignalHit(entry.id, entry.pdq_hex or "", image_index, distance))
        h.verdict = _worst([h.verdict, POSSIBLE_INFRINGEMENT])
        if bank.kind == BankKind.ALLOW:
            allowed_images.setdefault(image_index, (bank, entry.id, 1.0))
    for m in matches:
        for bank, entry in members.get(m.note_id, []):
            if not bank.enabled:
                continue
            dup, inf = _thresholds(bank, duplicate, infringement)
            if m.score < inf:
                continue
            verdict = _verdict(m.score, dup, inf)
            h = bank_hits(bank)
            h.matches.append(dataclasses.replace(m, verdict=verdict))
            h.entry_ids[m.note_id] = entry.id
            h.verdict = _worst([h.verdict, verdict])
            if bank.kind == BankKind.ALLOW:
                explained = set()
                for e in m.evidence:
                    if e.query_kind in IMAGE_KINDS and e.effective_score >= inf and e.query_image_index is not None:
                        allowed_images.setdefault(e.query_image_index, (bank, entry.id, e.effective_score))
                        explained.add(e.query_image_index)
                if len(explained) == n_query_images:  # every query image is the entry's (or there is none)
                    whole_note = whole_note or (bank, entry.id, m.score)

    def suppression(m: Match, threshold: float) -> Suppression | None:
        if m.verdict == CLEAR:
            return None
        if whole_note is not None:
            bank, entry_id, score = whole_note
            return Suppression(m.note_id, m.score, bank.name, entry_id,
                               f"the note matches allow-list {bank.name!r} entry {entry_id} as a whole ({score:.3f})")
        best = _best_image_evidence(m)
        if best is None or best.query_image_index not in allowed_images or m.note_score >= threshold:
            return None
        bank, entry_id, score = allowed_images[best.query_image_index]
        return Suppression(m.note_id, m.score, bank.name, entry_id,
                           f"the match rests on query image {best.query_image_index}, which matches allow-list "
                           f"{bank.name!r} entry {entry_id} ({score:.3f})")

    suppressed: dict[str, Suppression] = {}
    risk_matches: dict[str, Match] = {}
    for h in hits.values():
        if h.kind != BankKind.RISK.value:
            continue
        threshold = _thresholds(bank_of[h.bank], duplicate, infringement)[1]
        kept = []
        for m in h.matches:
            s = suppression(m, threshold)
            if s is not None:
                suppressed.setdefault(m.note_id, s)
                continue
            kept.append(m)
            seen = risk_matches.get(m.note_id)
            if seen is None or VERDICT_ORDER[m.verdict] > VERDICT_ORDER[seen.verdict]:
                risk_matches[m.note_id] = m
        h.matches = kept
        h.entry_ids = {k: v for k, v in h.entry_ids.items() if any(m.note_id == k for m in kept)}
        h.verdict = _worst([m.verdict for m in kept] + [POSSIBLE_INFRINGEMENT for _ in h.signals])

    in_enabled_bank = {n for n, pairs in members.items() if any(b.enabled for b, _ in pairs)}
    library: list[Match] = []
    for m in matches:
        if m.note_id in imported or m.note_id in risk_matches or m.note_id in suppressed:
            continue
        if m.note_id in in_enabled_bank and any(b.enabled and b.kind == BankKind.ALLOW for b, _ in members[m.note_id]):
            continue  # known-good content is not a finding
        s = suppression(m, infringement)
        if s is not None:
            suppressed[m.note_id] = s
            continue
        library.append(m)
        if len(library) == limit:
            break
    report_matches = sorted([*risk_matches.values(), *library], key=lambda m: (-m.score, m.note_id))
    ordered = sorted(hits.values(), key=lambda h: h.bank)
    return report_matches, [h for h in ordered if h.matches or h.signals], library, list(suppressed.values())


# ---- the PDQ index of bare hash entries (rebuilt only when the entries change) ------------------------------
class PdqBankIndex:
    """Every PDQ entry of the enabled banks as packed bits, searched by brute-force Hamming distance
    (numpy bitwise_count over 4 uint64 words a hash; about 1 ms per 100k entries and query image)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version: tuple | None = None
        self._pairs: list[tuple[Bank, BankEntry]] = []
        self._words = np.zeros((0, 4), dtype=np.uint64)  # (N, 4)

    def search(self, sessions, hashes: Sequence[PdqHash | None], max_distance: int,
               min_quality: int) -> list[tuple[Bank, BankEntry, int, int]]:
        """(bank, entry, query image index, distance) of every entry within max_distance of a query hash
        of quality >= min_quality (entries of unknown quality are trusted)."""
        with sessions() as s:
            version = records.pdq_index_version(s)
            with self._lock:
                if version != self._version:
                    self._pairs = records.pdq_entries(s)
                    self._words = np.stack([_words(bytes.fromhex(e.pdq_hex)) for _, e in self._pairs]) \
                        if self._pairs else np.zeros((0, 4), dtype=np.uint64)
                    self._version = version
                pairs, words = self._pairs, self._words
        out = []
        for i, h in enumerate(hashes):
            if h is None or h.quality < min_quality or not pairs:
                continue
            query = _words(np.packbits(h.bits).tobytes())  # (4,)
            distances = np.bitwise_count(words ^ query[None, :]).sum(axis=1)  # (N,)
            for j in np.flatnonzero(distances <= max_distance):
                bank, entry = pairs[j]
                if entry.pdq_quality is None or entry.pdq_quality >= min_quality:
                    out.append((bank, entry, i, int(distances[j])))
        return out


def _words(packed: bytes) -> np.ndarray:
    """32 bytes of a PDQ hash (packed bits, first bit highest) -> (4,) uint64."""
    return np.frombuffer(packed, dtype=">u8").astype(np.uint64)


# ---- the service ---------------------------------------------------------------------------------------------
class Banks:
    """Bank operations over one UniNoteClient (its library and records).

    lookback(note_id): runs (or queues) the look-back of a note just added to a bank; default: here, through
    UniNoteClient.check_stored (the library's stored vectors; the report is saved). notify(delivery_id): sends
    (or queues) one webhook delivery; default: workers.webhook_tasks.submit_delivery.
    """

    def __init__(self, client: "UniNoteClient", lookback: LookbackRunner | None = None,
                 notify: Notifier | None = None, lock: AbstractContextManager | None = None):
        self.client = client
        self._lookback = lookback or self._lookback_here
        self._notify = notify or _submit_delivery
        self.store_lock = lock or nullcontext()  # held around direct store reads and writes (exchange)
        self._pdq = PdqBankIndex()

    @property
    def sessions(self):
        return self.client.library.sessions

    # ---- banks ----------------------------------------------------------------------------------------
    def list(self) -> list[Bank]:
        with self.sessions() as s:
            return records.list_banks(s)

    def get(self, name: str) -> Bank:
        """Raises RecordNotFoundError('bank', name)."""
        with self.sessions() as s:
            bank = records.get_bank(s, name)
        if bank is None:
            raise RecordNotFoundError("bank", name)
        return bank

    def create(self, name: str, kind: BankKind | str = BankKind.RISK, action: str = "review", *, actor: str,
               **settings: Any) -> Bank:
        """A new bank (audit-logged). settings: duplicate_threshold, infringement_threshold, enabled,
        description, webhook_url (http(s), a public address: app/webhook_targets.py), webhook_secret.
        Raises ValueError naming the field, BankExistsError."""
        self._check_webhook(settings)
        with transaction(self.sessions) as s:
            bank = records.create_bank(s, name, kind, action, **settings)
            audit_log.append(s, actor, Action.BANK, f"bank:{name}", {"change": "create", "kind": bank.kind.value,
                                                                     "action": bank.action})
        return bank

    def update(self, name: str, *, actor: str, **changes: Any) -> Bank:
        """Change a bank's settings (audit-logged; the webhook secret is never logged)."""
        self._check_webhook(changes)
        with transaction(self.sessions) as s:
            bank = records.update_bank(s, name, **changes)
            logged = {k: v for k, v in changes.items() if k != "webhook_secret"}
            audit_log.append(s, actor, Action.BANK, f"bank:{name}", {"change": "update", **logged})
        return bank

    def _check_webhook(self, settings: dict[str, Any]) -> None:
        """Refuse a webhook_url a delivery may not reach (app/webhook_targets.py: SSRF guard), naming the field."""
        if settings.get("webhook_url") is not None:
            settings["webhook_url"] = check_webhook_url(
                settings["webhook_url"], self.client.settings.webhook_allow_private_addresses)

    def delete(self, name: str, *, actor: str) -> None:
        """Delete a bank, its entries and delivery log; the vectors of its imported notes are removed."""
        with transaction(self.sessions) as s:
            imported = records.delete_bank(s, name)
            audit_log.append(s, actor, Action.BANK, f"bank:{name}", {"change": "delete", "imported": len(imported)})
        for note_id in imported:
            self.client.delete(note_id)

    # ---- entries --------------------------------------------------------------------------------------
    def entries(self, name: str, offset: int = 0, limit: int = 50) -> list[BankEntry]:
        with self.sessions() as s:
            return records.list_entries(s, name, offset, limit)

    def deliveries(self, name: str, offset: int = 0, limit: int = 50) -> list[WebhookDelivery]:
        with self.sessions() as s:
            return records.list_deliveries(s, name, offset, limit)

    def add_note(self, name: str, note_id: str, *, actor: str, details: Mapping[str, Any] | None = None,
                 lookback: bool = True) -> EntryAdded:
        """Add a note of the library to a bank (audit-logged), then run its look-back over the whole library
        (only when the entry is new). Raises RecordNotFoundError('bank' | 'note'), ValueError when the note
        is not indexed."""
        with self.sessions() as s:
            rec = registry.get_note_record(s, note_id)
        if rec is None:
            raise RecordNotFoundError("note", note_id)
        if rec.status != NoteStatus.INDEXED:
            raise ValueError(f"note_id: note {note_id!r} is {rec.status.value}, not indexed: only stored notes "
                             "can be banked")
        with transaction(self.sessions) as s:
            entry, created = records.add_entry(s, name, origin=EntryOrigin.LIBRARY, added_by=actor, note_id=note_id,
                                               details=dict(details or {}))
            if created:
                audit_log.append(s, actor, Action.BANK, f"bank:{name}", {"change": "add", "note_id": note_id,
                                                                         "entry_id": entry.id})
        added = EntryAdded(entry, created)
        if created and lookback:
            result = self._lookback(note_id)
            if isinstance(result, dict):
                added = dataclasses.replace(added, **result)
        return added

    def add_from_match(self, name: str, match_id: int, *, actor: str) -> EntryAdded:
        """Add the matched note of a saved match to a bank (a moderator's decision). Raises RecordNotFoundError."""
        with self.sessions() as s:
            note_id, report_id = records.matched_note(s, match_id)
        return self.add_note(name, note_id, actor=actor, details={"match_id": match_id, "report_id": report_id})

    def remove_entry(self, name: str, entry_id: int, *, actor: str) -> BankEntry:
        """Remove an entry (audit-logged); an imported note's vectors go with it."""
        with transaction(self.sessions) as s:
            entry = records.remove_entry(s, name, entry_id)
            audit_log.append(s, actor, Action.BANK, f"bank:{name}", {"change": "remove", "entry_id": entry_id,
                                                                     "note_id": entry.note_id})
        if entry.origin == EntryOrigin.IMPORT and entry.note_id:
            self.client.delete(entry.note_id)
        return entry

    def _lookback_here(self, note_id: str) -> dict[str, Any]:
        report = self.client.check_stored(note_id, save=True)
        return {"lookback_report_id": report.report_id, "lookback_verdict": report.verdict}

    # ---- checking -------------------------------------------------------------------------------------
    def check(self, note: Note | Mapping[str, Any], *, limit: int = 10, save: bool = True,
              stages: dict[str, float] | None = None) -> BankCheck:
        """Audit a note against the library and its banks (module docstring). stages: filled with the
        seconds of each stage (audit, banks, save). Raises what UniNoteClient.check raises (ValueError,
        InputError, ModelVersionMismatchError), ValueError for limit < 1."""
        from app.client import as_note

        if limit < 1:
            raise ValueError(f"limit: must be >= 1, got {limit}")
        stages = {} if stages is None else stages
        note = as_note(note)
        t0 = time.perf_counter()
        full = self.client.library.check(note, limit=ALL_CANDIDATES, save=False)
        t1 = stages["audit"] = time.perf_counter() - t0
        ids = [m.note_id for m in full.matches]
        with self.sessions() as s:
            members = records.memberships(s, ids)
            imported = records.imported_note_ids(s, ids)
        signal_hits = self._pdq_hits(note) if self._has_pdq_entries() else []
        config = full.config
        matches, banks, library, suppressed = group_matches(
            full.matches, members, imported, signal_hits, len(note.images), config["duplicate_threshold"],
            config["infringement_threshold"], limit)
        report = dataclasses.replace(full, matches=matches, verdict=_worst(m.verdict for m in matches))
        result = BankCheck(report, banks, library, suppressed)
        stages["banks"] = time.perf_counter() - t0 - t1
        if save:
            self._save(result, note.note_id)
            stages["save"] = time.perf_counter() - t0 - t1 - stages["banks"]
        return result

    def _has_pdq_entries(self) -> bool:
        with self.sessions() as s:
            return records.pdq_index_version(s)[0] > 0

    def _pdq_hits(self, note: Note) -> list[tuple[Bank, BankEntry, int, int]]:
        hashes = [pdq_hash(load_image(p, note_id=note.note_id, field=f"images[{i}]")) for i, p in enumerate(note.images)]
        s = self.client.settings
        return self._pdq.search(self.sessions, hashes, s.pdq_max_distance, s.pdq_min_quality)

    def _save(self, result: BankCheck, query_note_id: str) -> None:
        deliveries = []
        with transaction(self.sessions) as s:
            result.report.report_id = reports.save_report(s, result.report.to_dict(), query_note_id=query_note_id)
            hit_entries = [eid for h in result.banks for eid in h.entry_ids.values()]
            hit_entries += [sig.entry_id for h in result.banks for sig in h.signals]
            records.record_hits(s, hit_entries)
            for h in result.banks:
                if h.kind != BankKind.RISK.value:
                    continue
                bank = records.get_bank(s, h.bank)
                target = records.webhook_target(s, bank.id) if bank else None
                if target is not None:
                    deliveries.append(records.create_delivery(s, bank.id, target[0], MATCH_EVENT,
                                                              match_event(result, h)))
        for delivery_id in deliveries:
            try:
                self._notify(delivery_id)
            except Exception:  # the delivery stays pending in the log; the check itself succeeded
                log.exception("could not queue webhook delivery %s", delivery_id)


def match_event(result: BankCheck, hits: BankHits) -> dict[str, Any]:
    """The JSON body a bank's webhook receives for one check (signed: workers/webhook_tasks.py)."""
    return {
        "event": MATCH_EVENT, "bank": hits.bank, "action": hits.action, "verdict": hits.verdict,
        "report_id": result.report.report_id, "query_note_id": result.report.query_note_id,
        "model_version": result.report.model_version, "created_at": result.report.created_at,
        "matches": [{"note_id": m.note_id, "entry_id": hits.entry_ids.get(m.note_id), "score": round(m.score, 6),
                     "verdict": m.verdict} for m in hits.matches],
        "signals": [asdict(sig) for sig in hits.signals],
    }


def _submit_delivery(delivery_id: int) -> None:
    from workers.webhook_tasks import submit_delivery

    submit_delivery(delivery_id)
