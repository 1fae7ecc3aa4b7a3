"""The remote client's transport (issue 15, Client): timeouts, retries on 5xx and connection errors, clear
exceptions by status. Against a real loopback HTTP server that answers from a script (the failures a real
`uninote serve` cannot be made to produce on demand), and a port where nothing listens."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from api_support import free_port
from app.client import UniNoteClient
from app.remote_client import (AuthenticationError, ConnectionFailedError, NotFoundError, PermissionDeniedError,
                               RateLimitedError, RejectedError, ServerError)


class ScriptedServer:
    """Answers GET requests with the next (status, body, headers) of `script` (the last one repeats);
    `hold` = an answer that waits until the server is closed (a server that never answers in time)."""

    HOLD = "hold"

    def __init__(self, script):
        self.script, self.seen = list(script), []
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.seen.append((self.path, self.headers.get("Authorization")))
                step = outer.script[min(len(outer.seen), len(outer.script)) - 1]
                if step == ScriptedServer.HOLD:
                    outer.release.wait(60)
                    return
                status, body, headers = step
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted():
    servers = []

    def make(*script):
        servers.append(ScriptedServer(script))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def connect(url: str, **options):
    return UniNoteClient.connect(url, "un_000000000000_" + "A" * 43, **({"retries": 3, "backoff_s": 0.01} | options))


def test_5xx_answers_are_retried_until_one_succeeds(scripted):
    server = scripted((503, {"error": "warming up"}, {}), (502, {"error": "bad gateway"}, {}), (200, [], {}))
    with connect(server.url) as client:
        assert client.banks.list() == []
    assert len(server.seen) == 3 and all(auth.startswith("Bearer un_") for _, auth in server.seen)


def test_a_server_that_keeps_failing_raises_server_error_after_the_retries(scripted):
    server = scripted((500, {"error": "database down", "field": None}, {}))
    with connect(server.url, retries=2) as client, pytest.raises(ServerError) as e:
        client.banks.list()
    assert e.value.status == 500 and e.value.error == "database down" and len(server.seen) == 3


def test_an_unreachable_server_raises_connection_failed_naming_it():
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with connect(url, retries=1) as client, pytest.raises(ConnectionFailedError) as e:
        client.banks.list()
    assert url in str(e.value) and isinstance(e.value, ConnectionError)


def test_a_server_that_does_not_answer_in_time_times_out_and_is_retried(scripted):
    server = scripted(ScriptedServer.HOLD)
    with connect(server.url, retries=1, timeout_s=0.5) as client, pytest.raises(ConnectionFailedError) as e:
        client.banks.list()
    assert "Timeout" in str(e.value) and len(server.seen) == 2


@pytest.mark.parametrize("status, error_class", [(401, AuthenticationError), (403, PermissionDeniedError),
                                                 (404, NotFoundError), (409, RejectedError), (413, RejectedError),
                                                 (422, RejectedError), (429, RateLimitedError)])
def test_4xx_answers_are_not_retried_and_raise_by_status(scripted, status, error_class):
    server = scripted((status, {"error": "refused as it is", "field": "webhook_url"}, {"Retry-After": "7"}))
    with connect(server.url) as client, pytest.raises(error_class) as e:
        client.banks.list()
    assert len(server.seen) == 1  # never retried
    assert (e.value.status, e.value.error, e.value.field) == (status, "refused as it is", "webhook_url")
    assert str(e.value) == f"HTTP {status} [webhook_url]: refused as it is"
    if status == 429:
        assert e.value.retry_after_s == 7.0
