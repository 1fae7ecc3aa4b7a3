"""The audit log: reports of checks, their ranked matches and moderators' decisions on them.

Plain functions over a Session (the caller owns the transaction: app.records.db.transaction);
they return app.records.types dataclasses, never ORM rows (HMA style). The whole report dict is
kept as JSON (`ReportRecord.report`); verdict, top_score and the matches are also columns so the
dashboard can filter and sort on them, and decisions can score thresholds (precision/recall).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from pathlib import PurePath
from typing import Any, Literal

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from app.records.errors import RecordNotFoundError
from app.records.models import AuditReportRow, DecisionRow, MatchRow, utcnow
from app.records.paging import check_page
from app.records.types import Decision, DecisionRecord, MatchRecord, ReportRecord, ReportSummary

ReportOrder = Literal["newest", "score"]


def save_report(
    session: Session,
    report_dict: Mapping[str, Any],
    query_note_id: str | None = None,
    created_at: datetime | None = None,
) -> int:
    """Store one audit report; returns its id.

    report_dict: {"verdict": str, "top_score": float | None, "matches": [{"note_id": str,
    "score": float, "verdict": str, ...}, ...], ...} (AuditReport.to_dict()); matches are stored in
    list order as ranks 1, 2, ...; every other key is kept in the JSON only. numpy scalars/arrays,
    paths and datetimes are converted to JSON. query_note_id: None when the note was checked without
    being stored. created_at: when the check ran (default now; naive = UTC), for backfills.
    Raises ValueError naming the first bad field (e.g. "matches[2].score: ...").
    """
    report = _to_json_dict(report_dict)
    verdict = _require_str(report, "verdict", "report")
    top_score = report.get("top_score")
    if top_score is not None:
        top_score = _require_score(report, "top_score", "report")
    matches = report.get("matches")
    if not isinstance(matches, list):
        raise ValueError(f"report.matches: expected a list of matches, got {type(matches).__name__}")
    if query_note_id is not None and (not isinstance(query_note_id, str) or not query_note_id):
        raise ValueError(f"query_note_id must be a non-empty string or None, got {query_note_id!r}")

    row = AuditReportRow(
        query_note_id=query_note_id,
        created_at=created_at or utcnow(),
        verdict=verdict,
        top_score=top_score,
        report=report,
    )
    for rank, match in enumerate(matches, start=1):
        where = f"matches[{rank - 1}]"
        if not isinstance(match, dict):
            raise ValueError(f"{where}: expected an object, got {type(match).__name__}")
        row.matches.append(
            MatchRow(
                matched_note_id=_require_str(match, "note_id", where),
                score=_require_score(match, "score", where),
                verdict=_require_str(match, "verdict", where),
                rank=rank,
            )
        )
    session.add(row)
    session.flush()
    return row.id


def get_report(session: Session, report_id: int) -> ReportRecord | None:
    """The report with its matches by rank (each with its latest decision), or None if there is none."""
    row = session.get(AuditReportRow, report_id)
    if row is None:
        return None
    matches = [_to_match(m, d, row) for m, d in session.execute(_matches_query().where(MatchRow.report_id == row.id))]
    return ReportRecord(
        id=row.id,
        query_note_id=row.query_note_id,
        created_at=row.created_at,
        verdict=row.verdict,
        top_score=row.top_score,
        report=row.report,
        matches=matches,
    )


def list_reports(
    session: Session,
    verdict: str | Sequence[str] | None = None,
    since: datetime | None = None,
    order: ReportOrder = "newest",
    offset: int = 0,
    limit: int = 50,
) -> list[ReportSummary]:
    """One page of reports, newest first (order="newest") or highest top_score first (order="score",
    reports without a score last); ties broken by id, newest first.

    verdict: one verdict or several; since: only reports created at/after it (naive = UTC).
    Raises ValueError for an unknown order, offset < 0 or limit outside 1..MAX_PAGE_SIZE.
    """
    check_page(offset, limit)
    match_count = (
        select(func.count(MatchRow.id)).where(MatchRow.report_id == AuditReportRow.id).correlate(AuditReportRow)
    ).scalar_subquery()
    query = select(AuditReportRow.id, AuditReportRow.query_note_id, AuditReportRow.created_at,
                   AuditReportRow.verdict, AuditReportRow.top_score, match_count)
    if verdict is not None:
        verdicts = [verdict] if isinstance(verdict, str) else list(verdict)
        query = query.where(AuditReportRow.verdict.in_(verdicts))
    if since is not None:
        query = query.where(AuditReportRow.created_at >= since)
    if order == "newest":
        query = query.order_by(AuditReportRow.created_at.desc(), AuditReportRow.id.desc())
    elif order == "score":
        query = query.order_by(AuditReportRow.top_score.desc().nulls_last(), AuditReportRow.id.desc())
    else:
        raise ValueError(f"order must be 'newest' or 'score', got {order!r}")
    return [ReportSummary(*values) for values in session.execute(query.offset(offset).limit(limit))]


def record_decision(
    session: Session, match_id: int, decision: Decision | str, comment: str | None, moderator: str
) -> DecisionRecord:
    """Store a moderator's decision on one match (earlier decisions are kept; the latest counts).
    Raises ValueError for an unknown decision or an empty moderator, RecordNotFoundError for an
    unknown match_id."""
    try:
        decision = Decision(decision)
    except ValueError:
        raise ValueError(f"unknown decision {decision!r}: expected one of {[d.value for d in Decision]}") from None
    if not isinstance(moderator, str) or not moderator.strip():
        raise ValueError("moderator must name who decided (got an empty value)")
    match = session.get(MatchRow, match_id)
    if match is None:
        raise RecordNotFoundError("match", match_id)
    row = DecisionRow(match_id=match.id, decision=decision.value, comment=comment or None,
                      moderator=moderator.strip(), created_at=utcnow())
    session.add(row)
    session.flush()
    return _to_decision(row, match, match.report)


def matches_for_note(session: Session, note_id: str) -> list[MatchRecord]:
    """Every stored match involving `note_id`, as the query (it was checked) or as the matched note
    (it was found), highest score first; each with its latest decision."""
    query = _matches_query().where(
        (AuditReportRow.query_note_id == note_id) | (MatchRow.matched_note_id == note_id)
    ).order_by(None).order_by(MatchRow.score.desc(), MatchRow.id)
    return [_to_match(m, d, r) for m, d, r in session.execute(query.add_columns(AuditReportRow))]


def decisions(session: Session, latest_only: bool = True, since: datetime | None = None) -> list[DecisionRecord]:
    """Moderator decisions joined with their matches, oldest first, for threshold precision/recall.
    latest_only: one decision per match (the latest); since: decided at/after it (naive = UTC)."""
    query = (
        select(DecisionRow, MatchRow, AuditReportRow)
        .join(MatchRow, DecisionRow.match_id == MatchRow.id)
        .join(AuditReportRow, MatchRow.report_id == AuditReportRow.id)
        .order_by(DecisionRow.id)
    )
    if latest_only:
        latest = select(func.max(DecisionRow.id)).group_by(DecisionRow.match_id)
        query = query.where(DecisionRow.id.in_(latest))
    if since is not None:
        query = query.where(DecisionRow.created_at >= since)
    return [_to_decision(d, m, r) for d, m, r in session.execute(query)]


def _matches_query() -> Select:
    """(MatchRow, latest decision or None) joined with the report, by rank."""
    latest_decision = (
        select(DecisionRow.decision)
        .where(DecisionRow.match_id == MatchRow.id)
        .order_by(DecisionRow.id.desc())
        .limit(1)
        .correlate(MatchRow)
        .scalar_subquery()
    )
    return (
        select(MatchRow, latest_decision)
        .join(AuditReportRow, MatchRow.report_id == AuditReportRow.id)
        .order_by(MatchRow.rank)
    )


def _to_match(m: MatchRow, decision: str | None, report: AuditReportRow) -> MatchRecord:
    return MatchRecord(
        id=m.id,
        report_id=m.report_id,
        rank=m.rank,
        query_note_id=report.query_note_id,
        matched_note_id=m.matched_note_id,
        score=m.score,
        verdict=m.verdict,
        created_at=report.created_at,
        decision=None if decision is None else Decision(decision),
    )


def _to_decision(d: DecisionRow, m: MatchRow, r: AuditReportRow) -> DecisionRecord:
    return DecisionRecord(
        id=d.id,
        match_id=m.id,
        report_id=r.id,
        query_note_id=r.query_note_id,
        matched_note_id=m.matched_note_id,
        score=m.score,
        match_verdict=m.verdict,
        decision=Decision(d.decision),
        comment=d.comment,
        moderator=d.moderator,
        created_at=d.created_at,
        raw_score=_raw_score(r.report, m),
    )


def _raw_score(report: Mapping[str, Any] | None, m: MatchRow) -> float | None:
    """The match's raw_score from its report's JSON (matches[rank - 1]), or None when it has none."""
    matches = (report or {}).get("matches") or []
    if not 1 <= m.rank <= len(matches) or not isinstance(matches[m.rank - 1], Mapping):
        return None
    entry = matches[m.rank - 1]
    raw = entry.get("raw_score")
    return float(raw) if isinstance(raw, (int, float)) and entry.get("note_id") == m.matched_note_id else None


def _to_json_dict(report_dict: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-safe deep copy of the report (numpy -> lists/floats, paths/datetimes -> strings)."""
    if not isinstance(report_dict, Mapping):
        raise ValueError(f"report: expected a dict (AuditReport.to_dict()), got {type(report_dict).__name__}")
    try:
        return json.loads(json.dumps(report_dict, default=_json_default, allow_nan=False))
    except ValueError as e:  # NaN/inf, which PostgreSQL JSON refuses
        raise ValueError(f"report: not storable as JSON: {e}") from None
    except TypeError as e:
        raise ValueError(f"report: not storable as JSON: {e}") from None


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy scalar or array
        return value.tolist()
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _require_str(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}.{key}: expected a non-empty string, got {value!r}")
    return value


def _require_score(obj: dict[str, Any], key: str, where: str) -> float:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where}.{key}: expected a finite number, got {value!r}")
    return float(value)
