"""The dashboard refuses every route without a signed-in account, and /admin without an admin: the real
FastAPI + Gradio app over a real library (local Qdrant, SQLite, the shipped encoder), driven over HTTP."""

from __future__ import annotations

import time

import pytest
import torch
from fastapi.testclient import TestClient

from app import moderation
from app.client import UniNoteClient
from app.dashboard.app import build_app
from app.dashboard.auth import COOKIE, SessionCodec
from app.records.audit_log import Action
from app.settings import Settings

HTML = {"accept": "text/html"}


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    torch.set_num_threads(2)
    settings = Settings(UNINOTE_HOME=tmp_path_factory.mktemp("dash-auth"), ocr_enabled=False,
                        secret_key="a-test-secret-of-some-length")
    client = UniNoteClient.open(settings)
    sessions = client.library.sessions
    moderation.create_user(sessions, moderation.CLI_ACTOR, "root1", "admin password", "admin")
    moderation.create_user(sessions, "root1", "mod1", "moderator password", "moderator")
    with TestClient(build_app(client, session_recheck_s=0.0), follow_redirects=False) as http:
        yield http, client
    client.close()


def sign_in(http: TestClient, username: str, password: str):
    http.cookies.clear()
    return http.post("/login", data={"username": username, "password": password, "next": "/dashboard/"})


@pytest.mark.parametrize("method,path", [
    ("GET", "/dashboard/config"), ("GET", "/dashboard/gradio_api/info"), ("POST", "/dashboard/gradio_api/queue/join"),
    ("POST", "/dashboard/gradio_api/upload"), ("GET", "/dashboard/gradio_api/queue/data?session_hash=x"),
    ("POST", "/dashboard/gradio_api/run/predict"), ("GET", "/admin/config"), ("GET", "/admin/gradio_api/info"),
])
def test_api_routes_refuse_anonymous_calls(dashboard, method, path):
    http, _ = dashboard
    http.cookies.clear()
    response = http.request(method, path, json={})
    assert response.status_code == 401, (path, response.status_code)
    assert response.json() == {"error": "sign in required"}


def test_pages_send_anonymous_browsers_to_sign_in(dashboard):
    http, _ = dashboard
    http.cookies.clear()
    for path in ("/", "/dashboard/", "/admin/"):
        response = http.get(path, headers=HTML)
        assert response.status_code == 303 and response.headers["location"].startswith("/login?next=")
    assert http.get("/login").status_code == 200 and http.get("/healthz").text == "ok"


def test_a_wrong_password_is_refused_and_logged(dashboard):
    http, client = dashboard
    response = sign_in(http, "mod1", "not the password")
    assert response.status_code == 401 and "Wrong username or password" in response.text
    assert COOKIE not in response.cookies
    assert http.get("/dashboard/config").status_code == 401
    entry = client.audit_log(action=Action.SIGN_IN_FAILED)[0]
    assert entry.actor == "mod1" and "not the password" not in str(entry.details)


def test_a_moderator_reaches_the_dashboard_but_not_the_admin_pages(dashboard):
    http, _ = dashboard
    response = sign_in(http, "mod1", "moderator password")
    assert response.status_code == 303 and response.headers["location"] == "/dashboard/"
    assert http.get("/dashboard/config").status_code == 200
    assert http.get("/dashboard/gradio_api/info").status_code == 200
    for path in ("/admin/", "/admin/config", "/admin/gradio_api/info"):
        assert http.get(path).status_code == 403, path
    assert http.get("/admin/", headers=HTML).status_code == 403


def test_an_admin_reaches_the_admin_pages(dashboard):
    http, _ = dashboard
    assert sign_in(http, "root1", "admin password").status_code == 303
    assert http.get("/admin/config").status_code == 200


def test_forged_expired_and_disabled_sessions_are_refused(dashboard):
    http, client = dashboard
    codec = SessionCodec(client.settings.secret_key)
    http.cookies.clear()
    http.cookies.set(COOKIE, SessionCodec("another-secret-entirely").encode("root1"))
    assert http.get("/dashboard/config").status_code == 401
    http.cookies.set(COOKIE, codec.encode("root1", now=time.time() - 2 * codec.ttl_s))
    assert http.get("/dashboard/config").status_code == 401
    moderation.create_user(client.library.sessions, "root1", "mod2", "moderator password", "moderator")
    assert sign_in(http, "mod2", "moderator password").status_code == 303
    assert http.get("/dashboard/config").status_code == 200
    moderation.change_active(client.library.sessions, "root1", "mod2", False)
    assert http.get("/dashboard/config").status_code == 401


def test_sign_in_never_redirects_off_site(dashboard):
    http, _ = dashboard
    http.cookies.clear()
    response = http.post("/login", data={"username": "mod1", "password": "moderator password",
                                         "next": "//evil.example/steal"})
    assert response.headers["location"] == "/dashboard/"


def test_session_codec_round_trip():
    codec = SessionCodec("k" * 32, ttl_s=60)
    value = codec.encode("alice", now=1000.0)
    assert codec.decode(value, now=1030.0) == "alice"
    assert codec.decode(value, now=1061.0) is None
    payload, mac = value.split(".")
    assert codec.decode(payload[:-2] + "xx." + mac, now=1030.0) is None
    assert codec.decode("garbage", now=1030.0) is None
