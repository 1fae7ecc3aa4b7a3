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


def test_raw_and_normalised_scores_side_by_side(record_sessions):
    from app.dashboard.thresholds_page import bin_rows, normalisation_rows
    from app.threshold_report import score_bins

    with transaction(record_sessions) as s:
        rid = reports.save_report(s, {"verdict": "duplicate", "matches": [
            # a copy whose crowded background lowered it, and a non-copy the raw score would have flagged
            {"note_id": "a", "score": 0.70, "raw_score": 0.92, "verdict": "possible_infringement"},
            {"note_id": "b", "score": 0.40, "raw_score": 0.75, "verdict": "clear"},
            {"note_id": "c", "score": 0.66, "verdict": "possible_infringement"}]})  # an older report: no raw
        ids = [m.id for m in reports.get_report(s, rid).matches]
    moderation.decide(record_sessions, ids[0], "infringing", "mod")
    moderation.decide(record_sessions, ids[1], "not_a_copy", "mod")
    moderation.decide(record_sessions, ids[2], "infringing", "mod")
    report = threshold_report(record_sessions, [0.9, 0.65])
    n = report.normalisation
    assert n.n_matches == 2  # c has no raw score
    (raw_09, raw_065), (norm_09, norm_065) = n.raw, n.normalised
    assert (raw_09.flagged, raw_09.precision, raw_065.flagged, raw_065.precision) == (1, 1.0, 2, 0.5)
    assert (norm_09.flagged, norm_065.flagged, norm_065.precision, norm_065.recall) == (0, 1, 1.0, 1.0)
    assert normalisation_rows(n) == [[0.9, 1, 1.0, 1.0, 0, 1.0, 0.0], [0.65, 2, 0.5, 1.0, 1, 1.0, 1.0]]
    rows = {r[0]: r[1:] for r in bin_rows(n)}
    assert rows["0.9–1.0"] == [1, 0, 0, 0] and rows["0.7–0.8"] == [0, 1, 1, 0] and rows["0.4–0.5"] == [0, 0, 0, 1]
    assert sum(b.copies_raw + b.others_raw for b in score_bins([-0.2, 1.3], [0.0, 1.0], [True, False])) == 2
    assert threshold_report(record_sessions, [0.9]).infringement[0].flagged == 0  # the normalised score counts


def test_no_raw_scores_no_normalisation_table(record_sessions):
    from app.dashboard.thresholds_page import normalisation_markdown, normalisation_rows

    with transaction(record_sessions) as s:
        rid = reports.save_report(s, {"verdict": "clear", "matches": [{"note_id": "a", "score": 0.5, "verdict": "clear"}]})
        mid = reports.get_report(s, rid).matches[0].id
    moderation.decide(record_sessions, mid, "not_a_copy", "mod")
    report = threshold_report(record_sessions)
    assert report.normalisation is None and normalisation_rows(None) == []
    assert "No decided match" in normalisation_markdown(None)
