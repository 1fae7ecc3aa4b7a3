"""The API test bed: a real `uninote serve` process on a free loopback port over the embedded default (local
Qdrant folder + SQLite in a tmp HOME), a real Celery worker for the `webhooks` queue (Redis, the test db),
the same notes indexed in a second HOME for the in-process comparison client, and API keys per scope.

Used by tests/conftest.py (the session fixture `api_server`) for tests/app/api and tests/security."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import skimage.data
from PIL import Image

from app.notes import Note
from app.settings import Settings

REPO = Path(__file__).resolve().parents[1]
SERVER_START_S = 240  # imports + encoder load on a busy 2-core machine
PHOTOS = {  # skimage photo -> (title, body)
    "astronaut": ("Meeting an astronaut", "Portrait of an astronaut in a white suit next to the flag."),
    "coffee": ("Latte art this morning", "A cup of coffee with a leaf drawn in the milk foam."),
    "rocket": ("Launch day", "The rocket on the pad, hours before the launch."),
    "chelsea": ("My cat Chelsea", "Chelsea the tabby cat looking at the camera."),
}
SCOPE_KEYS = ("check", "index", "decide", "admin")
MAX_BODY_BYTES = 8 * 1024 * 1024  # API_MAX_BODY_BYTES of the test server


@dataclass
class ApiServer:
    url: str
    home: Path  # the server's HOME (its library)
    photos: Path  # the library's photos and planted copies
    log: Path
    keys: dict[str, str]  # "check" / "index" / "decide" / "admin" / "all" -> token
    key_ids: dict[str, str] = field(default_factory=dict)
    compare_home: Path | None = None  # the in-process comparison library (same notes)
    redis_url: str | None = None

    def headers(self, key: str = "all") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[key]}"}

    def settings(self, **overrides) -> Settings:
        return Settings(UNINOTE_HOME=self.home, ocr_enabled=False, **overrides)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_photos(folder: Path) -> dict[str, Path]:
    """The library's photos as JPEG files (skimage.data) and planted copies: a cropped re-encode of the
    astronaut ("astronaut_copy") and the coffee photo resized ("coffee_copy")."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in PHOTOS:
        paths[name] = folder / f"{name}.jpg"
        Image.fromarray(getattr(skimage.data, name)()).convert("RGB").save(paths[name], quality=92)
    with Image.open(paths["astronaut"]) as im:
        im.convert("RGB").crop((30, 20, 480, 500)).save(folder / "astronaut_copy.jpg", quality=40)
    with Image.open(paths["coffee"]) as im:
        im.convert("RGB").resize((300, 200)).save(folder / "coffee_copy.jpg", quality=60)
    paths["astronaut_copy"] = folder / "astronaut_copy.jpg"
    paths["coffee_copy"] = folder / "coffee_copy.jpg"
    return paths


def library_notes(photos: Path) -> list[Note]:
    notes = [Note(note_id=name, title=t, body=b, images=[photos / f"{name}.jpg"], author="tester")
             for name, (t, b) in PHOTOS.items()]
    notes.append(Note(note_id="text-review", title="商品很好", body="商品很好，物流也很快，包装完好，下次还会再来购买。"))
    return notes


def server_env(home: Path, redis_url: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in {"DATABASE_URL", "QDRANT_URL", "QDRANT_PATH", "ENCODER_URL", "CHECKPOINT", "ENVIRONMENT",
                        "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"}}
    env |= {"UNINOTE_HOME": str(home), "OCR_ENABLED": "false", "OMP_NUM_THREADS": "2", "PYTHONPATH": str(REPO),
            "PYTHONUNBUFFERED": "1", "API_RATE_LIMIT": "100000/minute", "WEBHOOK_MAX_RETRIES": "4",
            "API_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
            "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true"}  # the tests' webhook receiver listens on 127.0.0.1
    if redis_url:
        env["CELERY_BROKER_URL"] = redis_url
    return env | extra


def start_server(home: Path, port: int, log: Path, env: dict[str, str]) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
                                cwd=home, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def wait_until_up(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while True:
        if proc.poll() is not None:
            pytest.fail(f"the API server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"the API server did not start in {SERVER_START_S} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def cli(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`uninote ARGS` against HOME (the real CLI in a subprocess)."""
    return subprocess.run([sys.executable, "-m", "app.cli", *args], env=server_env(home, None), input=stdin,
                          capture_output=True, text=True, timeout=300, cwd=home)


def add_key(home: Path, scopes: str, name: str) -> tuple[str, str]:
    """(key id, token) from `uninote key add`."""
    done = cli(home, "key", "add", "--name", name, "--scopes", scopes)
    assert done.returncode == 0, done.stderr
    first, token = done.stdout.strip().splitlines()[-2:]
    return first.split()[1], token


def multipart_note(note: dict, images: list[Path]) -> dict:
    """httpx kwargs of a POST /v1/check."""
    return {"data": {"note": json.dumps(note)},
            "files": [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in images]}


def jpeg_bytes(size: tuple[int, int] = (64, 64), color=(200, 40, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "JPEG")
    return buf.getvalue()
