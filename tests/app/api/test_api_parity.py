"""The remote client over a real `uninote serve` and the in-process client over a second HOME holding the
same notes give identical reports, matches and decisions (UniNoteClient.connect vs UniNoteClient.open)."""

from __future__ import annotations

import dataclasses

import pytest

from app.audit import TIMING_KEYS
from app.client import UniNoteClient
from app.remote_client import NotFoundError, RejectedError
from app.settings import Settings

VOLATILE = ("created_at", "report_id", "timings_ms")  # when, under which id, how fast each side checked


def comparable(report) -> dict:
    d = report.to_dict()
    for key in VOLATILE:
        d.pop(key)
    return d


@pytest.fixture(scope="module")
def local(api_server):
    with UniNoteClient.open(Settings(UNINOTE_HOME=api_server.compare_home, ocr_enabled=False)) as client:
        yield client


@pytest.fixture(scope="module")
def remote(api_server):
    with UniNoteClient.connect(api_server.url, api_server.keys["all"], timeout_s=300) as client:
        yield client


def queries(photos):
    return [
        {"note_id": "q-astronaut", "title": "Who I met today", "images": [str(photos / "astronaut_copy.jpg")]},
        {"note_id": "q-coffee", "title": "Morning cup", "body": "coffee", "images": [str(photos / "coffee_copy.jpg")]},
        {"note_id": "q-text", "title": "商品很好", "body": "商品很好，物流也很快，包装完好，下次还会再来购买。"},
        {"note_id": "q-two", "title": "two photos", "images": [str(photos / "rocket.jpg"), str(photos / "chelsea.jpg")]},
    ]


def test_check_gives_the_same_report_remote_and_in_process(api_server, local, remote):
    for q in queries(api_server.photos):
        here, there = local.check(q, save=False), remote.check(q, save=False)
        assert comparable(there) == comparable(here), q["note_id"]
        assert there.report_id is None
        assert list(there.timings_ms) == list(TIMING_KEYS)  # the server's split, through the API schema
        assert there.timings_ms["search"] > 0 and there.timings_ms["total"] >= there.timings_ms["search"]
    # and the planted copy is found, by both
    report = remote.check(queries(api_server.photos)[0], save=True)
    assert report.matches[0].note_id == "astronaut" and report.verdict != "clear"
    assert isinstance(report.report_id, int)


def test_check_many_keeps_the_order_and_the_reports(api_server, local, remote):
    qs = queries(api_server.photos)[:3]
    here, there = local.check_many(qs, save=False), remote.check_many(qs, save=False)
    assert [comparable(r) for r in there] == [comparable(r) for r in here]
    with pytest.raises(ValueError, match="note_id"):
        remote.check_many([qs[0], {"title": "no id"}])  # validated before any call


def test_index_delete_matches_and_decisions_match(api_server, local, remote):
    photos = api_server.photos
    note = {"note_id": "parity-new", "title": "A new rocket photo", "images": [str(photos / "rocket.jpg")]}
    r_there, r_here = remote.index([note]), local.index([note])
    assert dataclasses.asdict(r_there) == dataclasses.asdict(r_here) == {"indexed": ["parity-new"], "skipped": [],
                                                                         "failed": {}}
    assert dataclasses.asdict(remote.index([note])) == dataclasses.asdict(local.index([note]))  # unchanged: skipped
    q = {"note_id": "parity-q", "title": "rocket again", "images": [str(photos / "rocket.jpg")]}
    there, here = remote.check(q), local.check(q)
    assert comparable(there) == comparable(here)
    m_there = [m for m in remote.get_matches("parity-new") if m.report_id == there.report_id]
    m_here = [m for m in local.get_matches("parity-new") if m.report_id == here.report_id]
    strip = lambda ms: [(m.rank, m.query_note_id, m.matched_note_id, m.score, m.verdict, m.decision) for m in ms]
    assert strip(m_there) == strip(m_here) and m_there
    d_there = remote.record_decision(m_there[0].id, "duplicate", moderator="alice", comment="same photo")
    d_here = local.record_decision(m_here[0].id, "duplicate", moderator="alice", comment="same photo")
    fields = ("matched_note_id", "query_note_id", "score", "match_verdict", "decision", "comment", "moderator")
    assert [getattr(d_there, f) for f in fields] == [getattr(d_here, f) for f in fields]
    remote.delete("parity-new")
    local.delete("parity-new")
    with pytest.raises(NotFoundError):
        remote.delete("never-indexed-note")


def test_remote_errors_name_the_field(api_server, remote):
    with pytest.raises(RejectedError) as e:
        remote.record_decision(1, "maybe", moderator="alice")
    assert e.value.status == 422 and e.value.field == "decision"
    with pytest.raises(NotFoundError):
        remote.record_decision(10**9, "duplicate", moderator="alice")


def test_in_process_check_honours_banks_like_the_api(api_server, local, remote):
    """Issue 15: UniNoteClient.check (in-process) runs the banks' check the API runs: the same bank on both
    sides, the same report; an allow-list hit suppresses the match in both."""
    photos = api_server.photos
    query = {"note_id": "q-parity-allow", "title": "Morning", "body": "my own text",
             "images": [str(photos / "coffee_copy.jpg")]}
    before = local.check(query, save=False)
    assert "coffee" in {m.note_id for m in before.matches if m.verdict != "clear"}
    local.banks.create("parity-brand", "allow", "allow", actor="test")
    remote.banks.create("parity-brand", "allow", "allow")
    try:
        local.banks.add_note("parity-brand", "coffee", actor="test", lookback=False)
        remote.banks.add_note("parity-brand", "coffee")
        here, there = local.check(query, save=False), remote.check(query, save=False)
        assert comparable(here) == comparable(there)
        assert "coffee" not in {m.note_id for m in here.matches}  # suppressed by the allow-list, in-process too
    finally:
        local.banks.delete("parity-brand", actor="test")
        remote.banks.delete("parity-brand")
