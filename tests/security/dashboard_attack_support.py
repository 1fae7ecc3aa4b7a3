"""Helpers of the dashboard attack replays: a real dashboard server process (`python -m app.dashboard`) over an
empty library in a tmp HOME, HTTP clients that sign in as a browser would (same Origin), raw Gradio calls
(queue/join + the SSE result stream, as Gradio's JS client makes them), and audit-log counts read from the
records database by this test process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
START_S = 240  # loading the encoder and Gradio on a busy 2-core machine
ACCOUNTS = {"admin1": ("admin", "admin-password-1"), "mod1": ("moderator", "moderator-password-1"),
            "mod2": ("moderator", "moderator-password-2")}
CLEAN_ENV = {"DATABASE_URL", "QDRANT_URL", "QDRANT_PATH", "ENCODER_URL", "CHECKPOINT", "ENVIRONMENT", "SECRET_KEY",
             "GRADIO_TEMP_DIR", "SIGN_IN_ACCOUNT_LIMITS", "SIGN_IN_ADDRESS_LIMITS", "SIGN_IN_CONCURRENCY"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a dashboard (or `uninote`) process on HOME: nothing from the calling shell's
    UniNote settings, this checkout first on the path."""
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    return env | {"UNINOTE_HOME": str(home), "OCR_ENABLED": "false", "GRADIO_ANALYTICS_ENABLED": "False",
                  "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)} | extra


def uninote(home: Path, *args: str, stdin: str = "", timeout: float = 120, **extra: str):
    """Run the real CLI (`python -m app.cli ARGS`) on HOME; returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "app.cli", *args], input=stdin, text=True, capture_output=True,
                          env=server_env(home, **extra), cwd=home.parent, timeout=timeout)


@dataclass
class Dashboard:
    url: str
    home: Path
    proc: subprocess.Popen
    log: Path
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def database(self) -> Path:
        return self.home / "uninote.db"

    def http(self) -> httpx.Client:
        """A client that sends the dashboard's own Origin, as the browser does on the dashboard's pages."""
        client = httpx.Client(base_url=self.url, timeout=120, headers={"origin": self.url})
        self.clients.append(client)
        return client

    def signed_in(self, username: str) -> httpx.Client:
        http = self.http()
        response = sign_in(http, username)
        assert response.status_code == 303, (response.status_code, response.text[:300])
        return http

    def peak_rss_mib(self) -> float:
        """The server process's peak resident memory (VmHWM) in MiB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmHWM in /proc/PID/status")

    def reset_peak_rss(self) -> None:
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_dashboard(tmp: Path, **extra_env: str) -> Dashboard:
    """Create ACCOUNTS (the function `uninote user add` calls) in a fresh HOME under tmp and start the
    dashboard process there on a free loopback port; returns once /healthz answers."""
    from app.dashboard import add_user
    from app.settings import Settings

    home = tmp / "home"
    settings = Settings(_env_file=None, UNINOTE_HOME=home, ocr_enabled=False)
    for name, (role, password) in ACCOUNTS.items():
        add_user(settings, name, password, role)
    port, log = free_port(), tmp / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "app.dashboard", "--host", "127.0.0.1", "--port", str(port)],
                                cwd=tmp, env=server_env(home, **extra_env), stdout=out, stderr=subprocess.STDOUT)
    dashboard = Dashboard(f"http://127.0.0.1:{port}", home, proc, log)
    deadline = time.monotonic() + START_S
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"the dashboard exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{dashboard.url}/healthz", timeout=2).status_code == 200:
                return dashboard
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            dashboard.stop()
            raise AssertionError(f"the dashboard did not start in {START_S} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


def sign_in(http: httpx.Client, username: str, password: str | None = None) -> httpx.Response:
    http.cookies.clear()
    return http.post("/login", data={"username": username, "password": password or ACCOUNTS[username][1],
                                     "next": "/dashboard/"})


def file_data(path: str | Path) -> dict:
    """A Gradio FileData reference, exactly as Gradio's JS client sends one for an uploaded file."""
    return {"path": str(path), "url": None, "orig_name": Path(path).name, "size": None, "mime_type": None,
            "is_stream": False, "meta": {"_type": "gradio.FileData"}}


def dependencies(http: httpx.Client, mount: str) -> list[dict]:
    """The Gradio events of a mounted Blocks (fn_index = position), from its /config."""
    response = http.get(f"{mount}/config")
    assert response.status_code == 200, response.text[:300]
    return response.json()["dependencies"]


def fn_index(http: httpx.Client, mount: str, api_name: str) -> tuple[int, dict]:
    for i, dep in enumerate(dependencies(http, mount)):
        if dep.get("api_name") == api_name:
            return i, dep
    raise AssertionError(f"no event {api_name!r} on {mount}")


def join(http: httpx.Client, mount: str, index: int, data: list, session_hash: str, event_data=None,
         trigger_id: int | None = None) -> httpx.Response:
    """POST {mount}/gradio_api/queue/join: start one event, as the browser does."""
    return http.post(f"{mount}/gradio_api/queue/join",
                     json={"data": data, "event_data": event_data, "fn_index": index, "trigger_id": trigger_id,
                           "session_hash": session_hash})


def result(http: httpx.Client, mount: str, session_hash: str) -> dict:
    """The `process_completed` message of the session's event, read from the SSE stream."""
    with http.stream("GET", f"{mount}/gradio_api/queue/data", params={"session_hash": session_hash}) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    return message
    raise AssertionError("the event stream ended without process_completed")


def upload(http: httpx.Client, mount: str, path: Path) -> str:
    """Upload a file through Gradio's upload route; returns the path Gradio stored it at."""
    with path.open("rb") as f:
        response = http.post(f"{mount}/gradio_api/upload", files={"files": (path.name, f, "image/jpeg")})
    assert response.status_code == 200, response.text[:300]
    return response.json()[0]


def audit_count(dashboard: Dashboard, action: str, actor: str | None = None) -> int:
    """Entries of `action` (by `actor`) in the dashboard's records database, read by this process in SQL
    (an action the code under test does not know yet counts 0)."""
    from sqlalchemy import text

    from app.records.db import make_engine

    engine = make_engine(f"sqlite:///{dashboard.database}")
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM audit_log WHERE action = :a AND "
                                         "(:u IS NULL OR actor = :u)"), {"a": action, "u": actor}).scalar())
    finally:
        engine.dispose()


def audit_text(dashboard: Dashboard) -> str:
    """Every audit-log entry, one line each (for checking what was written)."""
    from app.records import audit_log
    from app.records.db import make_engine, session_factory

    engine = make_engine(f"sqlite:///{dashboard.database}")
    try:
        with session_factory(engine)() as s:
            return "\n".join(e.describe() for e in audit_log.list_entries(s, limit=1000))
    finally:
        engine.dispose()


class Sentinel:
    """A real JPEG outside the upload folder whose access time betrays any read: its atime is set before
    its mtime, so the file system (relatime or strictatime) updates it on the next read."""

    def __init__(self, path: Path):
        from PIL import Image

        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 64), (200, 30, 30)).save(path, quality=90)
        self.path = path
        self.arm()

    def arm(self) -> None:
        mtime = self.path.stat().st_mtime
        os.utime(self.path, (mtime - 3600, mtime))

    def was_read(self) -> bool:
        st = self.path.stat()
        return st.st_atime > st.st_mtime - 3600 + 1

    def assert_detector_works(self) -> None:
        """Reads the file here: the detector must notice (else the file system does not keep atimes)."""
        self.path.read_bytes()
        assert self.was_read(), "this file system does not update access times: the sentinel sees nothing"
