"""Banks through the real server: hits grouped per bank and against the open library, allow-lists that
suppress a match and say why, a decision that banks the matched note (and runs its look-back), PDQ hash
lists, bank files between two libraries (and a refused model version), webhooks signed with HMAC-SHA256
delivered by a real Celery worker to a real loopback receiver, with retries."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.audit import CLEAR, ModelVersionMismatchError
from app.bank_exchange import export_bank, import_bank
from app.client import UniNoteClient
from app.image_hashes import pdq_hash
from app.records.banks import DeliveryStatus
from app.remote_client import NotFoundError, RejectedError
from app.settings import Settings
from app.webhooks import DELIVERY_HEADER, SIGNATURE_HEADER, verify_signature
from encoder.images import load_image

SECRET = "webhook-secret-0123456789"


@pytest.fixture
def remote(api_server):
    with UniNoteClient.connect(api_server.url, api_server.keys["all"], timeout_s=300) as client:
        made_banks, made_notes = [], []
        client.made_banks, client.made_notes = made_banks, made_notes
        yield client
        for name in made_banks:  # leave the shared server as it was (the parity tests compare it)
            try:
                client.banks.delete(name)
            except NotFoundError:
                pass
        for note_id in made_notes:
            client.delete(note_id)


def make_bank(remote, name, kind="risk", **settings):
    remote.made_banks.append(name)
    return remote.banks.create(name, kind, "remove" if kind == "risk" else "allow", **settings)


def q(photos, name, note_id):
    return {"note_id": note_id, "title": "incoming", "images": [str(photos / name)]}


def test_a_banked_note_is_reported_under_its_bank(api_server, remote):
    bank = make_bank(remote, "copyright-claims")
    added = remote.banks.add_note("copyright-claims", "astronaut")
    assert added.created and added.entry.note_id == "astronaut"
    assert added.lookback_report_id is not None  # the look-back of the banked note ran over the library
    result = remote.banks.check(q(api_server.photos, "astronaut_copy.jpg", "q-bank-1"))
    (hits,) = result.banks
    assert (hits.bank, hits.kind, hits.action) == ("copyright-claims", "risk", "remove")
    assert [m.note_id for m in hits.matches] == ["astronaut"] and hits.entry_ids == {"astronaut": added.entry.id}
    assert "astronaut" not in [m.note_id for m in result.library]
    assert result.report.matches[0].note_id == "astronaut" and result.report.verdict != CLEAR
    assert remote.banks.get("copyright-claims").hits == 1  # saved: hit counted
    remote.banks.check(q(api_server.photos, "astronaut_copy.jpg", "q-bank-2"), save=False)
    assert remote.banks.get("copyright-claims").hits == 1  # not saved: nothing counted
    # disabled: the note is an open-library match again
    remote.banks.update("copyright-claims", enabled=False)
    result = remote.banks.check(q(api_server.photos, "astronaut_copy.jpg", "q-bank-3"), save=False)
    assert result.banks == [] and result.library[0].note_id == "astronaut"
    assert bank.kind.value == "risk"


def test_an_allow_list_hit_suppresses_the_match_it_explains(api_server, remote):
    photos = api_server.photos
    remote.made_notes.append("coffee-repost")
    remote.index([{"note_id": "coffee-repost", "title": "Brand campaign repost", "body": "Our new blend.",
                   "images": [str(photos / "coffee.jpg")]}])
    query = {"note_id": "q-allow", "title": "Morning", "body": "my own text", "images": [str(photos / "coffee_copy.jpg")]}
    before = remote.banks.check(query, save=False)
    flagged = {m.note_id for m in before.report.matches if m.verdict != CLEAR}
    assert {"coffee", "coffee-repost"} <= flagged
    make_bank(remote, "brand-assets", kind="allow")
    remote.banks.add_note("brand-assets", "coffee")
    after = remote.banks.check(query, save=False)
    (allow,) = [h for h in after.banks if h.bank == "brand-assets"]
    assert allow.kind == "allow" and [m.note_id for m in allow.matches] == ["coffee"]
    suppressed = {s.note_id: s for s in after.suppressed}
    assert suppressed["coffee-repost"].allow_bank == "brand-assets" and "as a whole" in suppressed["coffee-repost"].reason
    assert not {m.note_id for m in after.report.matches} & {"coffee", "coffee-repost"}
    assert after.report.verdict == CLEAR
    # a note with the brand's image and a stolen one: only the match resting on the brand's image goes
    mixed = query | {"note_id": "q-allow-2", "images": [str(photos / "coffee_copy.jpg"), str(photos / "rocket.jpg")]}
    after = remote.banks.check(mixed, save=False)
    suppressed = {s.note_id: s for s in after.suppressed}
    assert "query image 0" in suppressed["coffee-repost"].reason
    reported = {m.note_id: m.verdict for m in after.report.matches}
    assert "coffee-repost" not in reported and reported["rocket"] != CLEAR


def test_a_decision_adds_the_matched_note_to_a_bank(api_server, remote):
    make_bank(remote, "spam-templates")
    report = remote.check(q(api_server.photos, "astronaut_copy.jpg", "q-decide"))
    match = next(m for m in remote.get_matches("astronaut") if m.report_id == report.report_id)
    decision = remote.record_decision(match.id, "infringing", moderator="mod-1", add_to_bank="spam-templates")
    assert decision.decision.value == "infringing"
    (entry,) = remote.banks.entries("spam-templates")
    assert entry.note_id == "astronaut" and entry.details["match_id"] == match.id and entry.added_by == "mod-1"
    with pytest.raises(NotFoundError):  # an unknown bank: refused before the decision is recorded
        remote.record_decision(match.id, "duplicate", moderator="mod-1", add_to_bank="no-such-bank")
    assert next(m for m in remote.get_matches("astronaut") if m.id == match.id).decision.value == "infringing"


def test_pdq_hash_lists_in_threatexchange_and_hma_formats(api_server, remote):
    photos = api_server.photos
    coffee = pdq_hash(load_image(photos / "coffee.jpg")).to_hex()
    make_bank(remote, "te-hashes")
    te_file = f"# ThreatExchange local file\npdq {coffee}\nvideo_md5 d41d8cd98f00b204e9800998ecf8427e\n"
    result = remote.banks.import_pdq("te-hashes", te_file)
    assert result.added == [coffee] and len(result.skipped) == 1
    hma = f'[{{"pdq": "{coffee}"}}, {{"pdq": "{"0" * 64}"}}]'
    assert remote.banks.import_pdq("te-hashes", hma).unchanged == [coffee]
    check = remote.banks.check(q(photos, "coffee_copy.jpg", "q-pdq"), save=False)
    (hits,) = [h for h in check.banks if h.bank == "te-hashes"]
    assert [s.pdq_hex for s in hits.signals] == [coffee] and hits.signals[0].distance <= 31
    with pytest.raises(RejectedError) as e:
        remote.banks.import_pdq("te-hashes", "pdq not-a-hash\n")
    assert e.value.status == 422 and "line 1" in e.value.error


def test_bank_files_move_between_libraries_of_one_model_version(api_server, remote):
    make_bank(remote, "exported")
    remote.banks.add_note("exported", "rocket")
    doc = remote.banks.export("exported")
    assert doc["model_version"] and len(doc["entries"]) == 1 and doc["entries"][0]["global"]
    # the in-process comparison library is a second library of the same weights
    with UniNoteClient.open(Settings(UNINOTE_HOME=api_server.compare_home, ocr_enabled=False)) as other:
        try:
            result = import_bank(other.banks, doc, actor="test", name="from-server")
            assert result.added == ["from-server:rocket"]
            check = other.banks.check(q(api_server.photos, "rocket.jpg", "q-import"), save=False)
            (hits,) = [h for h in check.banks if h.bank == "from-server"]
            assert [m.note_id for m in hits.matches] == ["from-server:rocket"]
            assert "from-server:rocket" not in [m.note_id for m in check.library]
            again = export_bank(other.banks, "from-server")
            assert again["entries"][0]["global"] == doc["entries"][0]["global"]  # vectors kept exactly
            wrong = doc | {"model_version": "some-other-weights"}
            with pytest.raises(ModelVersionMismatchError, match="some-other-weights"):
                import_bank(other.banks, wrong, actor="test", name="refused")
        finally:
            other.banks.delete("from-server", actor="test")
    with pytest.raises(RejectedError) as e:
        remote.banks.import_file(doc | {"model_version": "some-other-weights"}, name="refused")
    assert e.value.status == 409 and e.value.field == "model_version" and "some-other-weights" in e.value.error


class Receiver(BaseHTTPRequestHandler):
    statuses: list[int] = []
    seen: list[tuple[dict, bytes]] = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.seen.append((dict(self.headers), body))
        status = Receiver.statuses.pop(0) if Receiver.statuses else 200
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_webhook_is_signed_and_retried_with_backoff_by_a_worker(api_server, remote):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Receiver.statuses, Receiver.seen = [503, 503], []
    try:
        make_bank(remote, "notify-me", webhook_url=f"http://127.0.0.1:{server.server_port}/hook", webhook_secret=SECRET)
        remote.banks.add_note("notify-me", "chelsea")
        report = remote.check(q(api_server.photos, "chelsea.jpg", "q-webhook"))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            (delivery,) = remote.banks.deliveries("notify-me")
            if delivery.status != DeliveryStatus.PENDING:
                break
            time.sleep(0.3)
        assert delivery.status == DeliveryStatus.DELIVERED and delivery.attempts == 3, delivery
        assert len(Receiver.seen) == 3
        ids = {headers[DELIVERY_HEADER] for headers, _ in Receiver.seen}
        assert ids == {str(delivery.id)}
        for headers, body in Receiver.seen:
            assert verify_signature(SECRET, body, headers[SIGNATURE_HEADER])
            assert not verify_signature("another-secret-0123456", body, headers[SIGNATURE_HEADER])
        import json

        event = json.loads(Receiver.seen[-1][1])
        assert event["bank"] == "notify-me" and event["report_id"] == report.report_id
        assert [m["note_id"] for m in event["matches"]] == ["chelsea"]
    finally:
        server.shutdown()
