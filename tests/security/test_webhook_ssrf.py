"""Attack replay: a bank webhook aimed inside the deployment (SSRF, issue 15).

Whoever may configure a bank chooses the URL its webhook POSTs to, from inside the deployment. The attacks:
other schemes, the loopback interface (by name, IPv4, IPv6, IPv4-mapped IPv6, decimal and hex spellings),
private and link-local networks, shared address space, the cloud metadata service. Each is refused when the
webhook is set (Banks.create / Banks.update, the function the API and the CLI call; the API answers 422
naming `webhook_url`), and again at delivery time, where a URL that was accepted earlier (a DNS answer
that changed, a setting turned off) fails the delivery without one byte reaching the receiver.
WEBHOOK_ALLOW_PRIVATE_ADDRESSES=true admits loopback and private receivers, never the metadata service.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from app.client import UniNoteClient
from app.records import banks as records
from app.records.banks import DeliveryStatus
from app.records.db import transaction
from app.settings import Settings
from app.webhook_targets import WebhookTargetError, check_webhook_url
from app.webhooks import DELIVERY_HEADER, SIGNATURE_HEADER, Outcome, deliver, verify_signature

SECRET = "webhook-secret-0123456789"

INSIDE = {  # URL -> what it reaches
    "http://127.0.0.1:6379/": "loopback (Redis)",
    "http://localhost:5432/": "loopback by name (PostgreSQL)",
    "http://[::1]:8080/v1/banks": "IPv6 loopback (the API itself)",
    "http://[::ffff:127.0.0.1]/": "IPv4-mapped IPv6 loopback",
    "http://2130706433/": "decimal spelling of 127.0.0.1",
    "http://0x7f.1/": "hex spelling of 127.0.0.1",
    "http://0.0.0.0:8080/": "unspecified address",
    "http://10.0.0.5/hook": "private 10/8",
    "http://172.16.3.4/hook": "private 172.16/12",
    "https://192.168.1.1/hook": "private 192.168/16",
    "http://100.64.0.1/hook": "shared address space 100.64/10",
    "http://[fe80::1]/hook": "IPv6 link-local",
    "http://[fd12:3456::1]/hook": "IPv6 unique local",
}
METADATA = ["http://169.254.169.254/latest/meta-data/iam/security-credentials/",
            "http://[fd00:ec2::254]/latest/meta-data/", "http://169.254.170.2/v2/credentials"]
NOT_HTTP = ["file:///etc/passwd", "gopher://127.0.0.1:6379/_FLUSHALL", "ftp://example.org/x", "dict://127.0.0.1:11211/",
            "http:///no-host", "javascript:alert(1)"]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """An in-process client with the default settings (private addresses refused)."""
    home = tmp_path_factory.mktemp("ssrf") / "home"
    with UniNoteClient.open(Settings(UNINOTE_HOME=home, ocr_enabled=False)) as c:
        yield c


class Receiver:
    """A real HTTP receiver on 127.0.0.1 that records what reaches it."""

    def __init__(self):
        self.requests: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.mark.parametrize("url", list(INSIDE) + METADATA + NOT_HTTP)
def test_a_webhook_inside_the_deployment_is_refused_by_default(url):
    with pytest.raises(WebhookTargetError) as e:
        check_webhook_url(url)
    assert str(e.value).startswith("webhook_url: ")


@pytest.mark.parametrize("url", METADATA + NOT_HTTP)
def test_metadata_and_other_schemes_stay_refused_when_private_addresses_are_allowed(url):
    with pytest.raises(WebhookTargetError):
        check_webhook_url(url, allow_private=True)


def test_private_receivers_are_admitted_only_by_the_setting_and_public_ones_always():
    assert check_webhook_url(" http://127.0.0.1:9000/hook ", allow_private=True) == "http://127.0.0.1:9000/hook"
    assert check_webhook_url("http://10.0.0.5/hook", allow_private=True) == "http://10.0.0.5/hook"
    assert check_webhook_url("https://93.184.215.14/hook") == "https://93.184.215.14/hook"  # a public address
    with pytest.raises(WebhookTargetError, match="WEBHOOK_ALLOW_PRIVATE_ADDRESSES"):
        check_webhook_url("http://127.0.0.1:9000/hook")
    with pytest.raises(WebhookTargetError, match="does not resolve"):
        check_webhook_url("http://no-such-host.invalid/hook")


def test_banks_refuse_the_url_and_store_nothing(client):
    for url in ("http://127.0.0.1:6379/", METADATA[0], "gopher://127.0.0.1:6379/_FLUSHALL"):
        with pytest.raises(ValueError) as e:
            client.banks.create("ssrf-create", webhook_url=url, webhook_secret=SECRET, actor="attacker")
        assert str(e.value).startswith("webhook_url: ")
        assert "ssrf-create" not in [b.name for b in client.banks.list()]
    client.banks.create("ssrf-update", actor="admin")
    try:
        with pytest.raises(ValueError, match="^webhook_url: .*loopback"):
            client.banks.update("ssrf-update", webhook_url="http://localhost:5432/", webhook_secret=SECRET,
                                actor="attacker")
        assert client.banks.get("ssrf-update").webhook_url is None
    finally:
        client.banks.delete("ssrf-update", actor="admin")


def _delivery(client: UniNoteClient, bank: str, url: str) -> int:
    sessions = client.library.sessions
    with transaction(sessions) as s:  # the records layer: a bank configured while its target was accepted
        if records.get_bank(s, bank) is None:
            records.create_bank(s, bank, webhook_url=url, webhook_secret=SECRET)
        bank_id = records.get_bank(s, bank).id
        return records.create_delivery(s, bank_id, url, "bank.match", {"event": "bank.match", "bank": bank})


def test_delivery_checks_again_and_sends_nothing_inside(client, receiver):
    url = f"http://localhost:{receiver.port}/hook"
    delivery_id = _delivery(client, "ssrf-rebound", url)
    outcome = deliver(client.library.sessions, delivery_id, timeout_s=5, final=False)
    assert outcome == Outcome.FAILED and receiver.requests == []  # not one byte reached the receiver
    with client.library.sessions() as s:
        d = records.get_delivery(s, delivery_id)
    assert d.status == DeliveryStatus.FAILED and d.last_error.startswith("not sent: webhook_url: localhost (")
    assert "loopback" in d.last_error
    metadata_id = _delivery(client, "ssrf-rebound", METADATA[0])
    assert deliver(client.library.sessions, metadata_id, timeout_s=5, final=False, allow_private=True) == Outcome.FAILED


def test_allowed_delivery_connects_to_the_checked_address_with_the_name_kept(client, receiver):
    url = f"http://localhost:{receiver.port}/hook"
    delivery_id = _delivery(client, "ssrf-allowed", url)
    assert deliver(client.library.sessions, delivery_id, timeout_s=5, final=True, allow_private=True) == Outcome.DELIVERED
    ((headers, body),) = receiver.requests
    assert headers["Host"] == f"localhost:{receiver.port}"
    assert headers[DELIVERY_HEADER] == str(delivery_id) and verify_signature(SECRET, body, headers[SIGNATURE_HEADER])


def test_a_redirect_into_the_deployment_is_not_followed(client, receiver):
    """A receiver that answers 307 to the metadata service: the delivery fails, nothing else is requested."""
    class Redirector(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(307)
            self.send_header("Location", f"http://127.0.0.1:{receiver.port}/stolen")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        delivery_id = _delivery(client, "ssrf-redirect", f"http://127.0.0.1:{server.server_port}/hook")
        outcome = deliver(client.library.sessions, delivery_id, timeout_s=5, final=True, allow_private=True)
    finally:
        server.shutdown()
        server.server_close()
    assert outcome == Outcome.FAILED and receiver.requests == []


def test_the_api_answers_422_naming_the_field(api_server):
    """The shared test server allows private receivers (its webhook tests use 127.0.0.1): metadata stays out."""
    r = httpx.post(f"{api_server.url}/v1/banks", headers=api_server.headers("admin"), timeout=60,
                   json={"name": "ssrf-api", "kind": "risk", "action": "review", "webhook_url": METADATA[0],
                         "webhook_secret": SECRET})
    assert r.status_code == 422 and r.json()["field"] == "webhook_url", r.text
    assert "metadata" in r.json()["error"]
    listed = httpx.get(f"{api_server.url}/v1/banks", headers=api_server.headers("check"), timeout=60).json()
    assert "ssrf-api" not in [b["name"] for b in listed]
