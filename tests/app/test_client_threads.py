"""UniNoteClient shared by threads (issue 12, items 13 and 14).

The client once held one lock for every call, so a 3 ms read of the records waited seconds behind other
threads' encodings. Here the real encoder is held mid-encoding by a gate (a check in another thread is
inside `encode`); every read of the records, a decision, and the store-backed note pages must still answer.
No timing is asserted: on the old code they never return while the gate is shut (the guard's timeout fails
the test), on the new one they return at once.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import pytest
import skimage.data
import torch
from PIL import Image

from app.client import UniNoteClient
from app.library import Library
from app.notes import Note
from app.settings import Settings
from encoder.loading import load_encoder

GUARD_S = 120  # far beyond any read: reaching it means the call was waiting for the encoder


class GatedEncoder:
    """The real encoder, whose encode() waits for `release` once `shut` (and says when it is inside)."""

    def __init__(self, inner):
        self.inner = inner
        self.release = threading.Event()
        self.inside = threading.Event()
        self.release.set()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def encode(self, inputs):
        self.inside.set()
        assert self.release.wait(GUARD_S), "the gate was never opened"
        return self.inner.encode(inputs)


@pytest.fixture(scope="module")
def gated(tmp_path_factory):
    torch.set_num_threads(2)
    tmp = tmp_path_factory.mktemp("client-threads")
    settings = Settings(UNINOTE_HOME=tmp / "home", ocr_enabled=False)
    (tmp / "images").mkdir()
    notes = []
    for name in ("astronaut", "coffee"):
        path = tmp / "images" / f"{name}.jpg"
        Image.fromarray(getattr(skimage.data, name)()).convert("RGB").save(path)
        notes.append(Note(note_id=name, title=f"My {name} photo", images=[path]))
    encoder = GatedEncoder(load_encoder(settings))
    client = UniNoteClient(Library.open(settings, encoder=encoder))
    client.index(notes)
    with client.library.sessions() as s:
        from app.records import users

        users.add_user(s, "mod1", "moderator-password", "moderator")
        s.commit()
    report = client.check(Note(note_id="q", title="Astronaut", images=[tmp / "images" / "astronaut.jpg"]))
    yield client, encoder, tmp, report
    client.close()


def test_reads_and_decisions_do_not_wait_for_an_encoding(gated):
    client, encoder, tmp, report = gated
    match_id = client.get_matches("astronaut")[0].id
    encoder.release.clear()
    encoder.inside.clear()
    with ThreadPoolExecutor(2) as pool:
        checking = pool.submit(client.check, Note(note_id="q2", title="Coffee", images=[tmp / "images" / "coffee.jpg"]))
        try:
            assert encoder.inside.wait(GUARD_S), "the check never reached the encoder"

            def reads():
                return (client.get_matches("astronaut"), client.get_report(report.report_id), client.list_reports(),
                        client.audit_log(), client.thresholds(), client.threshold_report(), client.backfills(),
                        client.list_notes(), client.note("coffee"),
                        client.record_decision(match_id, "duplicate", moderator="mod1", comment="while encoding"))
            try:
                *_, notes, details, decision = pool.submit(reads).result(timeout=GUARD_S)
            except FutureTimeout:
                pytest.fail("a read waited for the encoder (the client's lock is held during encoding)")
            assert decision.match_id == match_id and notes.total >= 2 and details.record.note_id == "coffee"
            assert not checking.done()  # the reads ran while the encoder was busy
        finally:
            encoder.release.set()
        assert checking.result(timeout=GUARD_S).report_id is not None
    assert client.audit_log(action="decision")[0].details["comment"] == "while encoding"


def test_a_duplicate_id_in_one_batch_is_refused_not_reported_twice(gated):
    client, _, tmp, _ = gated
    photo = str(tmp / "images" / "coffee.jpg")
    batch = [{"note_id": "dup", "title": "first", "images": [photo]}, {"note_id": "other", "title": "x"},
             {"note_id": "dup", "title": "second", "body": "another note under the same id"}]
    with pytest.raises(ValueError, match="'dup' appear"):
        client.index(batch)
    assert client.note("dup").record is None and client.note("other").record is None  # nothing was indexed
    result = client.index(batch[:2])
    assert sorted(result.indexed) == ["dup", "other"] and not result.failed
