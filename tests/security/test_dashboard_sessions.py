"""Replay: forged and replayed dashboard session cookies (issue 12, items 3 and 4), against a real dashboard
process started the documented way without SECRET_KEY.

Before the fix the dashboard signed `{"u": name, "exp": ...}` with the public default `dev-secret-key`
(so anyone could mint an admin cookie), even bound to 0.0.0.0, and a cookie stayed valid for 12 h
whatever happened: sign-out was a GET that only asked the browser to forget it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import stat
import subprocess
import sys
import time
import uuid

import pytest

from dashboard_attack_support import (ACCOUNTS, fn_index, free_port, join, result, server_env, sign_in,
                                      start_dashboard)

pytestmark = pytest.mark.slow
COOKIE = "uninote_session"
DEFAULT_KEY = "dev-secret-key"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def forged_old_cookie(username: str, key: str) -> str:
    """The old cookie format, built by hand as an attacker would: payload "." HMAC-SHA256(key, payload)."""
    payload = _b64(json.dumps({"u": username, "exp": int(time.time()) + 3600}, separators=(",", ":")).encode())
    return f"{payload}.{_b64(hmac.new(key.encode(), payload.encode(), hashlib.sha256).digest())}"


def forged_new_cookie(key: str) -> str:
    """Today's format (token "." HMAC) with an invented token and the default key."""
    token = secrets.token_urlsafe(32)
    return f"{token}.{_b64(hmac.new(key.encode(), b'uninote-session:' + token.encode(), hashlib.sha256).digest())}"


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    server = start_dashboard(tmp_path_factory.mktemp("sessions"))
    yield server
    server.stop()


def test_cookies_forged_with_the_old_default_key_are_refused(dashboard):
    http = dashboard.http()
    for cookie in (forged_old_cookie("admin1", DEFAULT_KEY), forged_new_cookie(DEFAULT_KEY)):
        http.cookies.clear()
        http.cookies.set(COOKIE, cookie)
        for path in ("/admin/config", "/dashboard/config", "/admin/gradio_api/info"):
            assert http.get(path).status_code == 401, (path, cookie)
    key_file = dashboard.home / "secret_key"  # the installation's own key instead of a public one
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and len(key_file.read_text().strip()) >= 43


def test_a_cookie_replayed_after_sign_out_is_refused(dashboard):
    http = dashboard.signed_in("mod1")
    cookie = http.cookies[COOKIE]
    assert http.get("/logout").status_code == 200  # a GET (a link, an <img>) signs nobody out
    assert http.get("/dashboard/config").status_code == 200
    assert http.post("/logout").status_code == 303
    replay = dashboard.http()
    replay.cookies.set(COOKIE, cookie)
    assert replay.get("/dashboard/config").status_code == 401
    assert replay.post("/dashboard/gradio_api/queue/join", json={"data": [], "fn_index": 0}).status_code == 401


@pytest.mark.parametrize("api_name,data", [
    ("password_", [0, "mod2", "a-brand-new-password"]),
    ("role_", [0, "mod2", "moderator"]),
    ("disable_", [0, "mod2"]),
], ids=["password change", "role change", "disable"])
def test_a_cookie_replayed_after_an_account_change_is_refused(dashboard, api_name, data):
    """An admin changes mod2 on the Accounts page (the Gradio event the page's button sends); the cookie
    mod2 signed in with is refused at once."""
    admin = dashboard.signed_in("admin1")
    _admin_event(admin, "enable_", [0, "mod2"])
    _admin_event(admin, "password_", [0, "mod2", ACCOUNTS["mod2"][1]])
    victim = dashboard.signed_in("mod2")
    cookie = victim.cookies[COOKIE]
    assert victim.get("/dashboard/config").status_code == 200
    _admin_event(admin, api_name, data)
    replay = dashboard.http()
    replay.cookies.set(COOKIE, cookie)
    assert replay.get("/dashboard/config").status_code == 401
    if api_name != "disable_":
        password = data[2] if api_name == "password_" else ACCOUNTS["mod2"][1]
        assert sign_in(replay, "mod2", password).status_code == 303  # signing in again works


def _admin_event(admin, api_name: str, data: list) -> None:
    index, dep = fn_index(admin, "/admin", api_name)
    session = uuid.uuid4().hex
    assert join(admin, "/admin", index, data, session, trigger_id=dep["targets"][0][0]).status_code == 200
    message = result(admin, "/admin", session)
    assert message["success"], message


@pytest.mark.parametrize("key", ["aaaaaaaaaaaaaaaa", DEFAULT_KEY, "0123456789abcdef0123456789abcdef"])
def test_a_weak_key_is_refused_on_a_public_address(tmp_path, key):
    """`uninote dashboard --host 0.0.0.0` with a weak SECRET_KEY exits at once, saying why (it used to serve)."""
    env = server_env(tmp_path / "home", SECRET_KEY=key)
    try:
        done = subprocess.run([sys.executable, "-m", "app.cli", "dashboard", "--host", "0.0.0.0", "--port",
                               str(free_port())], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the dashboard served 0.0.0.0 with SECRET_KEY={key!r}")
    assert done.returncode != 0
    assert "SECRET_KEY is too weak" in done.stderr and "Traceback" not in done.stderr, done.stderr[-1500:]
    production = subprocess.run([sys.executable, "-m", "app.cli", "dashboard", "--port", str(free_port())],
                                env=env | {"ENVIRONMENT": "production"}, cwd=tmp_path, capture_output=True,
                                text=True, timeout=90)
    assert production.returncode != 0 and "SECRET_KEY" in production.stderr
