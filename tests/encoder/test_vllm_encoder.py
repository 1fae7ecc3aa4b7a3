"""VLLMEncoder's HTTP behaviour against a scripted server on loopback (a real HTTP server that answers what
each test tells it: vLLM itself cannot be made to misbehave): request shape, batching, concurrency bound,
retries with backoff, and the errors for a server that is down, refuses, or returns a bad shape.
Agreement with real vLLM vectors is tested in test_vllm_integration.py."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from tiny_qwen3vl import sample_notes

from encoder.qwen3vl_config import Qwen3VLEncoderConfig
from encoder.qwen3vl_elements import note_elements
from encoder.types import ElementKind, Encoder
from encoder.vllm_encoder import VLLMEncoder, VLLMRequestError, VLLMResponseError, VLLMUnavailableError

CFG = Qwen3VLEncoderConfig(dims=(4, 8), min_pixels=32 * 32, max_pixels=64 * 64, crop_boxes=((0, 0, 0.5, 0.5),))


class ScriptedServer:
    """POST /v1/embeddings answers from `script` (a list of callables body -> (status, json) consumed in
    order; the last one repeats); GET /v1/models names one model. Records every request body."""

    def __init__(self, script, delay_s: float = 0.0):
        self.script, self.delay_s = list(script), delay_s
        self.requests: list[dict] = []
        self.in_flight = self.max_in_flight = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, payload) -> None:
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._send(200, {"object": "list", "data": [{"id": "uninote-0123abcd4567"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer._lock:
                    outer.requests.append(body)
                    step = outer.script.pop(0) if len(outer.script) > 1 else outer.script[0]
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                try:
                    time.sleep(outer.delay_s)
                    self._send(*step(body))
                finally:
                    with outer._lock:
                        outer.in_flight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def ok(dim: int = 8):
    """Answers one deterministic unnormalised vector per conversation (first value = position + 1)."""

    def step(body):
        n = len(body["messages"])
        return 200, {"data": [{"index": i, "embedding": [float(i + 1)] + [0.5] * (dim - 1)} for i in range(n)]}

    return step


def status(code: int, message: str = "nope"):
    return lambda body: (code, {"error": {"message": message}})


@pytest.fixture
def server_factory():
    servers = []

    def make(*script, delay_s=0.0):
        s = ScriptedServer(script, delay_s)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def client(url: str, **kw) -> VLLMEncoder:
    kw.setdefault("backoff_s", 0.01)
    return VLLMEncoder(url, config=CFG, **kw)


def test_encode_sends_one_conversation_per_element_and_one_per_note(server_factory):
    server = server_factory(ok())
    enc = client(server.url, batch_size=4, concurrency=1)  # one request at a time: arrival order = input order
    notes = sample_notes()
    encoded = enc.encode(notes)
    assert isinstance(enc, Encoder)  # after encode: dims are known, no probe request
    expected = sum(1 + len(note_elements(n, CFG)[1]) for n in notes)
    sent = [conv for req in server.requests for conv in req["messages"]]
    assert len(sent) == expected and all(len(req["messages"]) <= 4 for req in server.requests)
    req = server.requests[0]
    assert req["model"] == "uninote-0123abcd4567" and req["add_generation_prompt"] is True
    system, user = sent[0]
    assert system == {"role": "system", "content": CFG.instructions["note"]}
    assert [p["type"] for p in user["content"]] == ["image_url", "text"]
    assert user["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert enc.model_version == "0123abcd4567" and enc.dims == (4, 8)
    first = encoded[0]
    assert first.model_version == "0123abcd4567" and first.global_vector.dtype == np.float32
    assert abs(np.linalg.norm(first.global_vector) - 1) < 1e-6
    assert [v.kind for v in first.locals][:2] == [ElementKind.IMAGE, ElementKind.CROP]


def test_requests_are_concurrent_but_bounded(server_factory):
    server = server_factory(ok(), delay_s=0.2)
    enc = client(server.url, batch_size=1, concurrency=3)
    convs = [note_elements(sample_notes()[2], CFG)[0]] * 9
    vectors = enc.embed_conversations(convs)
    assert vectors.shape == (9, 8)
    assert 1 < server.max_in_flight <= 3


def test_transient_failures_are_retried_with_backoff(server_factory):
    server = server_factory(status(503), status(502), ok())
    enc = client(server.url, max_retries=3)
    conv = note_elements(sample_notes()[2], CFG)[0]
    assert enc.embed_conversations([conv]).shape == (1, 8)
    assert len(server.requests) == 3


def test_a_server_that_keeps_failing_is_unavailable(server_factory):
    server = server_factory(status(500, "engine dead"))
    enc = client(server.url, max_retries=2, model="m")
    with pytest.raises(VLLMUnavailableError, match=f"{server.url}.*after 3 attempts.*HTTP 500"):
        enc.embed_conversations([note_elements(sample_notes()[2], CFG)[0]])
    assert len(server.requests) == 3


def test_server_down_names_the_url_and_is_a_connection_error():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    enc = client(f"http://127.0.0.1:{port}/v1", max_retries=1, model="m")
    with pytest.raises(VLLMUnavailableError, match=f"http://127.0.0.1:{port} is unavailable") as err:
        enc.encode(sample_notes()[2:])
    assert isinstance(err.value, ConnectionError)


def test_timeouts_are_retried_then_reported(server_factory):
    server = server_factory(ok(), delay_s=1.0)
    enc = client(server.url, timeout_s=0.2, max_retries=1, model="m")
    with pytest.raises(VLLMUnavailableError, match="timed out after 0.2 s"):
        enc.embed_conversations([note_elements(sample_notes()[2], CFG)[0]])


def test_a_rejected_request_carries_the_servers_message(server_factory):
    server = server_factory(status(400, "Model only supports Matryoshka dimensions [64, 128], got 32."))
    enc = client(server.url, model="m")
    with pytest.raises(VLLMRequestError, match=r"HTTP 400.*Matryoshka dimensions \[64, 128\]"):
        enc.embed_conversations([note_elements(sample_notes()[2], CFG)[0]], dimensions=32)
    assert server.requests[0]["dimensions"] == 32 and len(server.requests) == 1  # 4xx is not retried


@pytest.mark.parametrize("bad, message", [
    (lambda body: (200, {"object": "list"}), "no 'data' list"),
    (lambda body: (200, {"data": []}), "returned 0 embeddings for 1 inputs"),
    (lambda body: (200, {"data": [{"index": 0, "embedding": "AAAA"}]}), "not a list of floats"),
    (lambda body: (200, {"data": [{"index": 0, "embedding": [float("nan")] * 8}]}), "non-finite"),
    (lambda body: (200, {"data": [{"index": 0, "embedding": [0.0] * 8}]}), "zero vector"),
    (lambda body: (200, b"<html>gateway</html>"), "non-JSON"),
])
def test_bad_shapes_say_what_came_back(server_factory, bad, message):
    server = server_factory(bad)
    enc = client(server.url, model="m")
    with pytest.raises(VLLMResponseError, match=message):
        enc.embed_conversations([note_elements(sample_notes()[2], CFG)[0]])


def test_a_vector_of_the_wrong_size_is_refused(server_factory):
    server = server_factory(ok(8), ok(6))
    enc = client(server.url, model="m")
    assert enc.dims == (4, 8)
    with pytest.raises(VLLMResponseError, match="returned dim 6, expected 8"):
        enc.embed_conversations([note_elements(sample_notes()[2], CFG)[0]])


def test_from_settings_reads_the_encoder_settings(tmp_path):
    from app.settings import Settings

    CFG.save(tmp_path)
    settings = Settings(encoder_url="http://127.0.0.1:8000/v1", encoder_model="uninote-x", encoder_timeout_s=5,
                        encoder_concurrency=2, checkpoint=tmp_path)
    enc = VLLMEncoder.from_settings(settings)
    assert (enc.url, enc.model, enc.timeout_s, enc.concurrency) == ("http://127.0.0.1:8000", "uninote-x", 5.0, 2)
    assert enc.config == CFG
    with pytest.raises(ValueError, match="ENCODER_URL"):
        VLLMEncoder.from_settings(Settings(encoder_url=None))
    with pytest.raises(ValueError, match="http://"):
        VLLMEncoder("localhost:8000")
