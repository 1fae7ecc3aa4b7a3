"""app.records.reports on SQLite and PostgreSQL: reports, matches and decisions round trip; the
dashboard's list queries filter, order and page; bad reports give errors naming the field."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from app.records import reports
from app.records.db import transaction
from app.records.errors import RecordNotFoundError
from app.records.types import Decision

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


def report_dict(verdict: str, scores: list[float], ids: list[str] | None = None) -> dict:
    """An AuditReport.to_dict()-shaped report (numpy scores, extra keys, nested evidence)."""
    ids = ids or [f"n{i}" for i in range(len(scores))]
    return {
        "verdict": verdict,
        "top_score": np.float32(max(scores)) if scores else None,
        "matches": [
            {"note_id": nid, "score": np.float32(s), "verdict": "duplicate" if s >= 0.9 else "infringing",
             "evidence": [{"kind": "image", "query_index": 0, "match_index": 1, "score": float(s)}]}
            for nid, s in zip(ids, scores)
        ],
        "model_version": "compact-v1",
        "thresholds": {"duplicate": 0.9, "infringement": 0.75},
        "query_vector_64": np.linspace(0, 1, 4, dtype=np.float32),
    }


def test_report_round_trip_keeps_the_whole_dict_and_ranks_matches(record_sessions):
    with transaction(record_sessions) as s:
        rid = reports.save_report(s, report_dict("duplicate", [0.97, 0.81], ["orig", "other"]), "q1", created_at=T0)
    with transaction(record_sessions) as s:
        rep = reports.get_report(s, rid)
        assert reports.get_report(s, rid + 1000) is None
    assert (rep.id, rep.query_note_id, rep.verdict, rep.created_at) == (rid, "q1", "duplicate", T0)
    assert rep.top_score == pytest.approx(0.97, abs=1e-6)
    assert rep.report["thresholds"] == {"duplicate": 0.9, "infringement": 0.75}
    assert rep.report["matches"][0]["evidence"][0]["kind"] == "image"
    assert rep.report["query_vector_64"] == pytest.approx([0, 1 / 3, 2 / 3, 1])
    assert [(m.rank, m.matched_note_id, m.verdict, m.decision) for m in rep.matches] == [
        (1, "orig", "duplicate", None), (2, "other", "infringing", None)]
    assert rep.matches[0].score == pytest.approx(0.97, abs=1e-6) and rep.matches[0].query_note_id == "q1"


def test_a_note_checked_without_being_stored_has_no_query_id(record_sessions):
    with transaction(record_sessions) as s:
        rid = reports.save_report(s, report_dict("clean", []), None)
        rep = reports.get_report(s, rid)
    assert rep.query_note_id is None and rep.top_score is None and rep.matches == []


@pytest.mark.parametrize("bad, message", [
    ({"top_score": 0.5, "matches": []}, r"report\.verdict: expected a non-empty string"),
    ({"verdict": "clean", "top_score": "high", "matches": []}, r"report\.top_score: expected a finite number"),
    ({"verdict": "clean", "top_score": 0.1}, r"report\.matches: expected a list"),
    ({"verdict": "dup", "top_score": 0.9, "matches": [{"note_id": "a", "score": 0.9, "verdict": "dup"},
                                                      {"note_id": "b", "score": float("nan"), "verdict": "dup"}]},
     r"not storable as JSON"),
    ({"verdict": "dup", "top_score": 0.9, "matches": [{"note_id": "a", "score": 0.9, "verdict": "dup"},
                                                      {"note_id": "", "score": 0.8, "verdict": "dup"}]},
     r"matches\[1\]\.note_id"),
    ({"verdict": "dup", "top_score": 0.9, "matches": [{"note_id": "a", "score": True, "verdict": "dup"}]},
     r"matches\[0\]\.score"),
    ({"verdict": "dup", "top_score": 0.9, "matches": [{"note_id": "a", "score": 0.9, "verdict": "dup"}],
      "image": object()}, r"not storable as JSON: object"),
])
def test_bad_reports_name_the_bad_field(record_sessions, bad, message):
    with transaction(record_sessions) as s:
        with pytest.raises(ValueError, match=message):
            reports.save_report(s, bad, "q")
        assert reports.list_reports(s) == []  # nothing half-written


def _save_many(record_sessions) -> list[int]:
    """8 reports an hour apart: verdicts cycle duplicate/infringing/clean; clean ones have no score."""
    verdicts = ["duplicate", "infringing", "clean"]
    ids = []
    with transaction(record_sessions) as s:
        for i in range(8):
            v = verdicts[i % 3]
            scores = [] if v == "clean" else [0.5 + 0.05 * i]
            ids.append(reports.save_report(s, report_dict(v, scores), f"q{i}", created_at=T0 + timedelta(hours=i)))
    return ids


def test_list_reports_filters_orders_and_pages(record_sessions):
    ids = _save_many(record_sessions)
    with transaction(record_sessions) as s:
        newest = reports.list_reports(s, limit=100)
        by_score = reports.list_reports(s, order="score", limit=100)
        dups = reports.list_reports(s, verdict="duplicate")
        flagged = reports.list_reports(s, verdict=["duplicate", "infringing"], since=T0 + timedelta(hours=4))
        naive_since = reports.list_reports(s, since=(T0 + timedelta(hours=6)).replace(tzinfo=None))
        pages = [reports.list_reports(s, offset=o, limit=3) for o in (0, 3, 6)]
        with pytest.raises(ValueError, match="order must be"):
            reports.list_reports(s, order="oldest")
    assert [r.id for r in newest] == ids[::-1]
    assert newest[0].created_at == T0 + timedelta(hours=7) and newest[0].created_at.tzinfo is not None
    scored = [r.top_score for r in by_score]
    assert scored[:6] == sorted(scored[:6], reverse=True) and scored[6:] == [None] * 2  # no score: last
    assert {r.verdict for r in dups} == {"duplicate"} and len(dups) == 3
    assert [r.query_note_id for r in flagged] == ["q7", "q6", "q4"]
    assert [r.query_note_id for r in naive_since] == ["q7", "q6"]
    assert [len(p) for p in pages] == [3, 3, 2] and [r.id for p in pages for r in p] == ids[::-1]
    assert {r.match_count for r in newest} == {0, 1}


def test_decisions_round_trip_and_the_latest_counts(record_sessions):
    with transaction(record_sessions) as s:
        rid = reports.save_report(s, report_dict("duplicate", [0.95, 0.78], ["orig", "near"]), "q1")
        first, second = reports.get_report(s, rid).matches
        d1 = reports.record_decision(s, first.id, "duplicate", "same photo, new caption", "alice")
        reports.record_decision(s, second.id, Decision.INFRINGING, None, "bob")
        reports.record_decision(s, second.id, "not_a_copy", "same product, different photo", " carol ")
    assert (d1.decision, d1.moderator, d1.comment, d1.matched_note_id, d1.query_note_id) == (
        Decision.DUPLICATE, "alice", "same photo, new caption", "orig", "q1")
    assert d1.score == pytest.approx(0.95, abs=1e-6) and d1.match_verdict == "duplicate"

    with transaction(record_sessions) as s:
        rep = reports.get_report(s, rid)
        latest = reports.decisions(s)
        every = reports.decisions(s, latest_only=False)
        none_yet = reports.decisions(s, since=datetime.now(timezone.utc) + timedelta(days=1))
    assert [m.decision for m in rep.matches] == [Decision.DUPLICATE, Decision.NOT_A_COPY]
    assert [(d.matched_note_id, d.decision, d.moderator) for d in latest] == [
        ("orig", Decision.DUPLICATE, "alice"), ("near", Decision.NOT_A_COPY, "carol")]
    assert len(every) == 3 and none_yet == []


def test_record_decision_refuses_bad_input(record_sessions):
    with transaction(record_sessions) as s:
        rid = reports.save_report(s, report_dict("duplicate", [0.95]), "q1")
        match_id = reports.get_report(s, rid).matches[0].id
        with pytest.raises(ValueError, match="unknown decision 'maybe'"):
            reports.record_decision(s, match_id, "maybe", None, "alice")
        with pytest.raises(ValueError, match="moderator"):
            reports.record_decision(s, match_id, "duplicate", None, "")
        with pytest.raises(RecordNotFoundError, match="no match with id 99999"):
            reports.record_decision(s, 99999, "duplicate", None, "alice")


def test_matches_for_note_finds_it_as_query_and_as_match(record_sessions):
    with transaction(record_sessions) as s:
        reports.save_report(s, report_dict("duplicate", [0.93, 0.8], ["orig", "x"]), "copy1")
        reports.save_report(s, report_dict("infringing", [0.77], ["orig"]), "copy2")
        reports.save_report(s, report_dict("infringing", [0.76], ["y"]), "orig")
        reports.save_report(s, report_dict("clean", [0.2], ["z"]), "other")
    with transaction(record_sessions) as s:
        found = reports.matches_for_note(s, "orig")
    assert [(m.query_note_id, m.matched_note_id) for m in found] == [
        ("copy1", "orig"), ("copy2", "orig"), ("orig", "y")]  # highest score first
    assert [m.score for m in found] == sorted((m.score for m in found), reverse=True)
