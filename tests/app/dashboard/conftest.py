"""Fixtures of the dashboard browser tests: a real dashboard server process over a library of real photos
(skimage.data; ../shared/data grocery photos when present) and headless Chromium (Debian's package,
driven by Playwright; no browser download)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from dashboard_support import (CHROMIUM, CHROMIUM_ARGS, REPO, SERVER_START_S, USERS, Server, free_port, planted_copy,
                               write_library)


@pytest.fixture(scope="session")
def dashboard_server(tmp_path_factory) -> Iterator[Server]:
    """`python -m app.dashboard` on a free loopback port, HOME in a tmp folder, the library indexed and the
    accounts created beforehand (the same functions `uninote ingest` and `uninote user add` call)."""
    import torch

    from app.client import UniNoteClient
    from app.dashboard import add_user
    from app.settings import Settings

    torch.set_num_threads(2)
    tmp = tmp_path_factory.mktemp("dashboard")
    home, folder = tmp / "home", tmp / "library"
    settings = Settings(UNINOTE_HOME=home, ocr_enabled=False)
    for name, (role, password) in USERS.items():
        add_user(settings, name, password, role)
    notes = write_library(folder)
    with UniNoteClient.open(settings) as client:  # closed before the server opens the Qdrant folder
        result = client.index(notes, source=str(folder))
    assert not result.failed, result.failed
    copy = planted_copy(folder / "images" / "astronaut.jpg", tmp / "astronaut_copy.jpg")

    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in {"DATABASE_URL", "QDRANT_URL", "QDRANT_PATH", "ENCODER_URL", "CHECKPOINT", "ENVIRONMENT"}}
    env |= {"UNINOTE_HOME": str(home), "OCR_ENABLED": "false", "SECRET_KEY": "browser-test-secret-0123456789",
            "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2",
            "PYTHONPATH": str(REPO)}
    log = tmp / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "app.dashboard", "--host", "127.0.0.1", "--port", str(port)],
                                cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the dashboard exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the dashboard did not start in {SERVER_START_S} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield Server(url, home, copy, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def chromium():
    """Headless Chromium from Debian's package (skips naming it when absent)."""
    if not CHROMIUM.exists() and not shutil.which("chromium"):
        pytest.skip("Chromium not installed: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    yield context.new_page()
    context.close()
