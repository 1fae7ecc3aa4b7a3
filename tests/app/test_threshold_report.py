"""app/threshold_report.py: precision/recall per threshold, checked by hand on a small set, and on
decisions stored in SQLite/PostgreSQL."""

from __future__ import annotations

import pytest

from app import moderation
from app.records import reports
from app.records.db import transaction
from app.threshold_report import threshold_report, threshold_rows


def test_rows_by_hand():
    scores = [0.95, 0.85, 0.80, 0.60]
    positive = [True, False, True, False]
    high, mid, low = threshold_rows(scores, positive, [0.9, 0.8, 0.5])
    assert (high.flagged, high.true_positives, high.false_positives, high.false_negatives) == (1, 1, 0, 1)
    assert (high.precision, high.recall) == (1.0, 0.5)
    assert (mid.precision, mid.recall) == (pytest.approx(2 / 3), 1.0)
    assert (low.precision, low.recall) == (0.5, 1.0)
    none = threshold_rows([0.5], [False], [0.9])[0]
    assert (none.flagged, none.precision, none.recall) == (0, 1.0, None)
    with pytest.raises(ValueError):
        threshold_rows([0.5, 0.6], [True], [0.9])


def test_report_uses_the_latest_decision_per_match(record_sessions):
    with transaction(record_sessions) as s:
        rid = reports.save_report(s, {"verdict": "duplicate", "matches": [
            {"note_id": "a", "score": 0.97, "verdict": "duplicate"},
            {"note_id": "b", "score": 0.82, "verdict": "possible_infringement"},
            {"note_id": "c", "score": 0.55, "verdict": "clear"}]})
        ids = [m.id for m in reports.get_report(s, rid).matches]
    moderation.decide(record_sessions, ids[0], "duplicate", "mod")
    moderation.decide(record_sessions, ids[1], "duplicate", "mod")
    moderation.decide(record_sessions, ids[1], "not_a_copy", "mod")  # changed their mind: the latest counts
    moderation.decide(record_sessions, ids[2], "infringing", "mod")
    report = threshold_report(record_sessions, [0.9, 0.5])
    assert (report.n_decisions, report.n_copies, report.n_duplicates) == (3, 2, 1)
    at_09, at_05 = report.infringement
    assert (at_09.true_positives, at_09.false_positives, at_09.recall) == (1, 0, 0.5)
    assert (at_05.true_positives, at_05.false_positives, at_05.recall) == (2, 1, 1.0)
    assert report.duplicate[0].precision == 1.0 and report.duplicate[0].recall == 1.0
