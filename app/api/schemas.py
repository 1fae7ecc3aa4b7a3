"""Request and response bodies of the HTTP API (pydantic), apart from the records' dataclasses and ORM rows.

Responses are built from the dataclasses the library returns (AuditReport, BankCheck, MatchRecord, ...):
`model_validate(dataclass_or_dict, from_attributes=True)`. The remote client (app/remote_client.py) turns
them back into those same dataclasses, so both clients return equal values.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Verdict = Literal["duplicate", "possible_infringement", "clear"]


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ErrorOut(BaseModel):
    """Every 4xx/5xx body: what was wrong and, when one field is to blame, its name."""

    error: str
    field: str | None = None


class EvidenceOut(Out):
    query_kind: str
    query_index: int
    matched_kind: str
    matched_index: int
    score: float
    effective_score: float
    query_image_index: int | None = None
    query_box: list[float] | None = None
    query_text: str | None = None
    matched_image_index: int | None = None
    matched_box: list[float] | None = None
    matched_text: str | None = None
    pdq_distance: int | None = None
    pdq_match: bool = False
    background: float | None = None
    shift: float = 0.0
    inliers: int | None = Field(None, description="RANSAC inliers of this image pair's geometric verification "
                                "(None: not verified)")
    verified_score: float | None = Field(None, description="Inlier score in [0, 1) (0: did not verify)")
    verified_query_box: list[float] | None = Field(None, description="Matched region in the query image, "
                                                   "(x0, y0, x1, y1) fractions")
    verified_matched_box: list[float] | None = Field(None, description="Matched region in the matched image")
    verified_mirrored: bool = False


class MatchOut(Out):
    note_id: str
    title: str
    score: float
    verdict: Verdict
    global_score: float
    note_score: float
    local_score: float
    stages: list[str]
    evidence: list[EvidenceOut]
    text_score: float = 0.0
    verbatim_score: float = 0.0
    semantic_score: float = 0.0
    raw_score: float | None = Field(None, description="The score without the background normalisation")


class AuditReportOut(Out):
    query_note_id: str
    model_version: str
    verdict: Verdict
    matches: list[MatchOut]
    config: dict[str, Any]
    n_candidates: int
    created_at: str
    report_id: int | None = None
    top_score: float | None = None
    timings_ms: dict[str, float] = Field(default_factory=dict, description="Where the check's time went, wall ms: "
                                         "prepare, ocr, encode, search, rescore, verify, total (app/audit.py)")


class SignalHitOut(Out):
    entry_id: int
    pdq_hex: str
    image_index: int
    distance: int


class BankHitsOut(Out):
    bank: str
    kind: Literal["risk", "allow"]
    action: str
    verdict: Verdict
    matches: list[MatchOut]
    entry_ids: dict[str, int]
    signals: list[SignalHitOut]


class SuppressionOut(Out):
    note_id: str
    score: float
    allow_bank: str
    allow_entry_id: int
    reason: str


class CheckOut(Out):
    """POST /v1/check: the report (saved unless ?save=false), hits per bank, the open library, suppressed."""

    report: AuditReportOut
    banks: list[BankHitsOut]
    library: list[MatchOut]
    suppressed: list[SuppressionOut]


class IndexOut(Out):
    indexed: list[str]
    skipped: list[str]
    failed: dict[str, str]


class DeletedOut(BaseModel):
    note_id: str
    deleted: bool = True


class MatchRecordOut(Out):
    id: int
    report_id: int
    rank: int
    query_note_id: str | None
    matched_note_id: str
    score: float
    verdict: str
    created_at: datetime
    decision: str | None = None


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["duplicate", "infringing", "not_a_copy"]
    moderator: str | None = Field(None, min_length=1, max_length=200,
                                  description="Who decided (default: the API key's name).")
    comment: str | None = Field(None, max_length=5000)
    add_to_bank: str | None = Field(None, max_length=64, description="Also add the matched note to this bank "
                                    "(its look-back over the library runs).")


class DecisionOut(Out):
    id: int
    match_id: int
    report_id: int
    query_note_id: str | None
    matched_note_id: str
    score: float
    match_verdict: str
    decision: str
    comment: str | None
    moderator: str
    created_at: datetime
    raw_score: float | None = None


class BankOut(Out):
    id: int
    name: str
    kind: Literal["risk", "allow"]
    action: str
    duplicate_threshold: float | None
    infringement_threshold: float | None
    enabled: bool
    description: str
    webhook_url: str | None
    created_at: datetime
    updated_at: datetime
    entries: int
    hits: int


class BankIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]{0,63}$")
    kind: Literal["risk", "allow"] = "risk"
    action: str = Field("review", min_length=1, max_length=64)
    duplicate_threshold: float | None = Field(None, ge=-1, le=1)
    infringement_threshold: float | None = Field(None, ge=-1, le=1)
    enabled: bool = True
    description: str = Field("", max_length=2000)
    webhook_url: str | None = Field(None, max_length=2000)
    webhook_secret: str | None = Field(None, min_length=16, max_length=200)


class BankPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["risk", "allow"] | None = None
    action: str | None = Field(None, min_length=1, max_length=64)
    duplicate_threshold: float | None = Field(None, ge=-1, le=1)
    infringement_threshold: float | None = Field(None, ge=-1, le=1)
    enabled: bool | None = None
    description: str | None = Field(None, max_length=2000)
    webhook_url: str | None = Field(None, max_length=2000)
    webhook_secret: str | None = Field(None, min_length=16, max_length=200)


class BankEntryOut(Out):
    id: int
    bank: str
    origin: Literal["library", "import", "pdq"]
    note_id: str | None
    pdq_hex: str | None
    pdq_quality: int | None
    details: dict[str, Any]
    added_by: str
    added_at: datetime
    hit_count: int
    last_hit_at: datetime | None


class EntryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note_id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:\-]+$")
    details: dict[str, Any] = Field(default_factory=dict)


class EntryAddedOut(Out):
    entry: BankEntryOut
    created: bool
    lookback_report_id: int | None = None
    lookback_verdict: str | None = None
    lookback_task_id: str | None = None


class DecisionResultOut(BaseModel):
    decision: DecisionOut
    bank_entry: EntryAddedOut | None = None


class ImportOut(Out):
    bank: str
    added: list[str]
    unchanged: list[str]
    skipped: list[str]


class DeliveryOut(Out):
    id: int
    bank: str
    url: str
    event: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class AuditEntryOut(Out):
    id: int
    created_at: datetime
    actor: str
    action: str
    target: str | None
    details: dict[str, Any]


class HealthOut(BaseModel):
    status: Literal["ok"]
    model_version: str
