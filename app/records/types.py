"""Plain dataclasses that cross the records-layer boundary (ORM rows never leave app/records).

HMA style (facebook/ThreatExchange, OpenMediaMatch storage interfaces): every public function of
app.records.registry and app.records.reports takes a Session and returns these frozen dataclasses.
All datetimes are timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class NoteStatus(StrEnum):
    """Where a note is in the indexing pipeline."""

    PENDING = "pending"  # registered, vectors not written yet (or being re-written)
    INDEXED = "indexed"  # vectors written by `model_version`
    FAILED = "failed"  # the last indexing attempt failed; `last_error` says why
    DELETED = "deleted"  # tombstone: removed from the index, kept for the audit trail


class Decision(StrEnum):
    """A moderator's decision on one match of an audit report."""

    DUPLICATE = "duplicate"
    INFRINGING = "infringing"
    NOT_A_COPY = "not_a_copy"


@dataclass(frozen=True)
class NoteRecord:
    """The registry's view of one stored note.

    content_hash: 64 hex chars, sha256 (app.records.registry.content_hash).
    created_at: the note's own creation time (None if the note had none); indexed_at: when the
    vectors were last written; updated_at: when this record last changed.
    last_error: the error of the last failed indexing attempt (kept until the note is indexed).
    """

    note_id: str
    status: NoteStatus
    content_hash: str
    title: str
    author: str | None
    created_at: datetime | None
    source: str | None
    model_version: str | None
    indexed_at: datetime | None
    last_error: str | None
    updated_at: datetime

    def is_current(self, content_hash: str, model_version: str) -> bool:
        """True if this note is indexed with this content and these weights (re-indexing can be skipped)."""
        return (
            self.status == NoteStatus.INDEXED
            and self.content_hash == content_hash
            and self.model_version == model_version
        )


@dataclass(frozen=True)
class MatchRecord:
    """One match of an audit report: the query note (None when it was checked without being stored)
    matched `matched_note_id` with `score` (cosine scale) at `rank` (1 = best).
    decision: the latest moderator decision on this match, None if nobody decided yet.
    """

    id: int
    report_id: int
    rank: int
    query_note_id: str | None
    matched_note_id: str
    score: float
    verdict: str
    created_at: datetime  # the report's creation time
    decision: Decision | None = None


@dataclass(frozen=True)
class ReportSummary:
    """One row of the report list (no JSON body, no matches)."""

    id: int
    query_note_id: str | None
    created_at: datetime
    verdict: str
    top_score: float | None
    match_count: int


@dataclass(frozen=True)
class ReportRecord:
    """A stored audit report: the whole report dict as saved (`report`) and its matches by rank."""

    id: int
    query_note_id: str | None
    created_at: datetime
    verdict: str
    top_score: float | None
    report: dict[str, Any]
    matches: list[MatchRecord] = field(default_factory=list)


@dataclass(frozen=True)
class DecisionRecord:
    """A moderator decision joined with the match it judges, so thresholds can be scored
    (precision/recall of `match_verdict` at `score` against `decision`)."""

    id: int
    match_id: int
    report_id: int
    query_note_id: str | None
    matched_note_id: str
    score: float
    match_verdict: str
    decision: Decision
    comment: str | None
    moderator: str
    created_at: datetime
    raw_score: float | None = None  # the match's score without background normalisation (None: not reported)
