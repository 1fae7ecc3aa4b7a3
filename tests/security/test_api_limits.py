"""Request limits of the HTTP API against a real server: oversize bodies (declared and streamed), too many
images, pixel bombs, files that are not images, uploaded names and note paths that try to reach the server's
files, malformed JSON: each a 4xx JSON error naming the field, never a traceback, and nothing stored. The
per-key rate limit answers 429 with Retry-After (an in-process app with a low limit)."""

from __future__ import annotations

import io
import json
import struct
import zlib

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from api_support import MAX_BODY_BYTES, jpeg_bytes


def pixel_bomb(width: int = 30_000, height: int = 30_000) -> bytes:
    """A small PNG whose header declares width x height pixels (IHDR patched, CRC fixed)."""
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = 8 + 8  # signature, then length + "IHDR"
    data[ihdr:ihdr + 8] = struct.pack(">II", width, height)
    data[ihdr + 13:ihdr + 17] = struct.pack(">I", zlib.crc32(bytes(data[ihdr - 4:ihdr + 13])))
    return bytes(data)


def post_check(api_server, note: dict, files: list, **params):
    return httpx.post(f"{api_server.url}/v1/check", headers=api_server.headers(), params=params, timeout=120,
                      data={"note": json.dumps(note)}, files=files)


def post_index(api_server, notes: list, files: list):
    return httpx.post(f"{api_server.url}/v1/notes", headers=api_server.headers(), timeout=120,
                      data={"notes": json.dumps(notes)}, files=files)


def assert_refused(r: httpx.Response, status: int, field: str):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "field"} and body["field"] == field, body
    assert "Traceback" not in r.text


def not_stored(api_server, note_id: str) -> bool:
    r = httpx.delete(f"{api_server.url}/v1/notes/{note_id}", headers=api_server.headers(), timeout=60)
    return r.status_code == 404


def request_folders(api_server) -> list:
    folder = api_server.home / "api" / "requests"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_oversize_bodies_are_refused(api_server):
    big = b"\0" * (MAX_BODY_BYTES + 1)
    before = request_folders(api_server)
    r = post_index(api_server, [{"note_id": "too-big", "title": "x", "images": ["a.jpg"]}], [("images", ("a.jpg", big))])
    assert_refused(r, 413, "body")

    def stream():  # a well-formed multipart body without Content-Length (chunked), cut off past the limit
        yield (b'--zzz\r\nContent-Disposition: form-data; name="images"; filename="a.jpg"\r\n'
               b"Content-Type: image/jpeg\r\n\r\n")
        for _ in range(MAX_BODY_BYTES // (1 << 20) + 2):
            yield b"x" * (1 << 20)
        yield b"\r\n--zzz--\r\n"

    r = httpx.post(f"{api_server.url}/v1/notes", headers=api_server.headers() | {"Content-Type": "multipart/form-data; "
                   "boundary=zzz"}, content=stream(), timeout=120)
    assert_refused(r, 413, "body")
    assert not_stored(api_server, "too-big") and request_folders(api_server) == before


def test_too_many_images_are_refused(api_server):
    files = [("images", (f"{i}.jpg", jpeg_bytes(color=(i * 20, 10, 10)))) for i in range(10)]
    r = post_check(api_server, {"note_id": "ten-images", "title": "x"}, files)
    assert_refused(r, 413, "note.images")
    r = post_index(api_server, [{"note_id": "ten-images", "title": "x", "images": [f"{i}.jpg" for i in range(10)]}],
                   files)
    assert_refused(r, 413, "notes[0].images")
    assert not_stored(api_server, "ten-images")


def test_pixel_bombs_are_refused_before_decoding(api_server):
    before = request_folders(api_server)
    r = post_check(api_server, {"note_id": "bomb", "title": "x"}, [("images", ("bomb.png", pixel_bomb()))])
    assert_refused(r, 413, "images[0]")
    r = post_index(api_server, [{"note_id": "bomb", "title": "x", "images": ["ok.jpg", "bomb.png"]}],
                   [("images", ("ok.jpg", jpeg_bytes())), ("images", ("bomb.png", pixel_bomb(9000, 6000)))])
    assert_refused(r, 413, "images[1]")
    assert not_stored(api_server, "bomb") and request_folders(api_server) == before


def test_files_that_are_not_images_are_refused(api_server):
    r = post_index(api_server, [{"note_id": "not-image", "title": "x", "images": ["a.jpg"]}],
                   [("images", ("a.jpg", b"%PDF-1.4 not an image"))])
    assert_refused(r, 422, "images[0]")
    assert not_stored(api_server, "not-image")


def test_no_uploaded_name_or_note_path_reaches_the_file_system(api_server):
    r = post_index(api_server, [{"note_id": "server-path", "title": "x", "images": ["/etc/hostname"]}], [])
    assert_refused(r, 422, "notes[0].images[0]")
    assert not_stored(api_server, "server-path")
    r = post_check(api_server, {"note_id": "traversal", "title": "x"},
                   [("images", ("../../../../tmp/uninote-escape.jpg", jpeg_bytes()))], save="false")
    assert r.status_code == 200, r.text
    r = post_index(api_server, [{"note_id": "traversal", "title": "x", "images": ["../../evil.jpg"]}],
                   [("images", ("../../evil.jpg", jpeg_bytes((80, 80))))])
    assert r.status_code == 200 and r.json()["indexed"] == ["traversal"], r.text
    written = [p for p in api_server.home.rglob("*") if "evil" in p.name or "escape" in p.name]
    assert written == [] and not (api_server.home.parent / "evil.jpg").exists()
    httpx.delete(f"{api_server.url}/v1/notes/traversal", headers=api_server.headers(), timeout=60)


def test_malformed_requests_name_the_field(api_server):
    h = api_server.headers()
    r = httpx.post(f"{api_server.url}/v1/check", headers=h, data={"note": "{not json"}, timeout=60)
    assert_refused(r, 422, "note")
    r = httpx.post(f"{api_server.url}/v1/check", headers=h, data={"note": json.dumps({"note_id": "a/b"})}, timeout=60)
    assert_refused(r, 422, "note.note_id")
    r = httpx.post(f"{api_server.url}/v1/check", headers=h, timeout=60)
    assert_refused(r, 422, "note")
    r = httpx.post(f"{api_server.url}/v1/check", headers=h, params={"limit": 0}, data={"note": "{}"}, timeout=60)
    assert_refused(r, 422, "limit")
    r = httpx.post(f"{api_server.url}/v1/banks", headers=h, json={"name": "Bad Name!"}, timeout=60)
    assert_refused(r, 422, "name")
    r = httpx.post(f"{api_server.url}/v1/matches/1/decision", headers=h, json={"decision": "duplicate", "x": 1},
                   timeout=60)
    assert_refused(r, 422, "x")


def test_the_rate_limit_answers_429_per_key(tmp_path):
    from app.api.app import create_app
    from app.api.deps import RateLimit
    from app.client import UniNoteClient
    from app.records import api_keys
    from app.records.db import transaction
    from app.settings import Settings

    settings = Settings(UNINOTE_HOME=tmp_path, ocr_enabled=False, api_rate_limit="3/minute")
    with UniNoteClient.open(settings) as client:
        with transaction(client.library.sessions) as s:
            _, a = api_keys.create_key(s, "a", "check")
            _, b = api_keys.create_key(s, "b", "check")
        http = TestClient(create_app(client, notify=lambda _: None))
        codes = [http.get("/v1/banks", headers={"Authorization": f"Bearer {a}"}).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = http.get("/v1/banks", headers={"Authorization": f"Bearer {a}"})
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1 and "rate limit" in r.json()["error"]
        assert http.get("/v1/banks", headers={"Authorization": f"Bearer {b}"}).status_code == 200  # per key
    with pytest.raises(ValueError, match="API_RATE_LIMIT"):
        RateLimit("often", "memory://")
