"""The dashboard refuses every route without a signed-in account, and /admin without an admin; sessions end
at sign-out and at account changes; cross-origin state changes are refused; sign-ins are throttled. The
real FastAPI + Gradio app over a real library (local Qdrant, SQLite, the shipped encoder) with no
SECRET_KEY configured (the installation's key), driven over HTTP."""

from __future__ import annotations

import stat

import pytest
import torch
from fastapi.testclient import TestClient

from app import moderation
from app.client import UniNoteClient
from app.dashboard.app import build_app
from app.dashboard.auth import COOKIE, SessionCodec
from app.records import users, web_sessions
from app.records.audit_log import Action
from app.records.db import transaction
from app.secret_key import KEY_FILE, is_strong
from app.settings import Settings

HTML = {"accept": "text/html"}
ORIGIN = "http://testserver"  # TestClient's own origin


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    torch.set_num_threads(2)
    settings = Settings(_env_file=None, UNINOTE_HOME=tmp_path_factory.mktemp("dash-auth"), ocr_enabled=False)
    client = UniNoteClient.open(settings)
    sessions = client.library.sessions
    moderation.create_user(sessions, moderation.CLI_ACTOR, "root1", "admin password", "admin")
    for name in ("mod1", "mod2", "mod3", "mod4"):
        moderation.create_user(sessions, "root1", name, "moderator password", "moderator")
    with TestClient(build_app(client), follow_redirects=False, headers={"origin": ORIGIN}) as http:
        yield http, client
    client.close()


def sign_in(http: TestClient, username: str, password: str, **headers):
    http.cookies.clear()
    return http.post("/login", data={"username": username, "password": password, "next": "/dashboard/"},
                     headers=headers or None)


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


def test_without_secret_key_the_installation_key_signs_and_forged_cookies_fail(dashboard):
    http, client = dashboard
    key_file = client.settings.home / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and is_strong(key_file.read_text().strip())
    with transaction(client.library.sessions) as s:  # a real, live session token...
        token = web_sessions.open_session(s, users.get_user(s, "root1").id, 3600)
    http.cookies.clear()
    for forger in ("dev-secret-key", "another-secret-entirely"):  # ...signed with any other key
        http.cookies.set(COOKIE, SessionCodec(forger).encode(token))
        assert http.get("/admin/config").status_code == 401, forger
    http.cookies.set(COOKIE, SessionCodec(key_file.read_text().strip()).encode(token))
    assert http.get("/admin/config").status_code == 200  # the same token under the right key
    for garbage in ("garbage", "a.b", token, "." * 3):
        http.cookies.set(COOKIE, garbage)
        assert http.get("/dashboard/config").status_code == 401, garbage


def test_sign_out_is_a_post_and_ends_the_session(dashboard):
    http, _ = dashboard
    assert sign_in(http, "mod2", "moderator password").status_code == 303
    cookie = http.cookies[COOKIE]
    page = http.get("/logout")
    assert page.status_code == 200 and 'method="post"' in page.text
    assert http.get("/dashboard/config").status_code == 200  # GET /logout signed nobody out
    assert http.post("/logout").status_code == 303
    http.cookies.set(COOKIE, cookie)  # the cookie replayed after sign-out
    assert http.get("/dashboard/config").status_code == 401


@pytest.mark.parametrize("change", [
    lambda sessions: moderation.change_password(sessions, "root1", "mod2", "a new password 2"),
    lambda sessions: moderation.change_role(sessions, "root1", "mod2", "moderator"),
    lambda sessions: moderation.change_active(sessions, "root1", "mod2", False),
], ids=["password", "role", "disable"])
def test_account_changes_end_its_sessions(dashboard, change):
    http, client = dashboard
    sessions = client.library.sessions
    moderation.change_active(sessions, "root1", "mod2", True)
    moderation.change_password(sessions, "root1", "mod2", "moderator password")
    assert sign_in(http, "mod2", "moderator password").status_code == 303
    assert http.get("/dashboard/config").status_code == 200
    change(sessions)
    assert http.get("/dashboard/config").status_code == 401


def test_cross_origin_state_changes_are_refused(dashboard):
    http, client = dashboard
    http.cookies.clear()
    before = len(client.audit_log(action=Action.SIGN_IN, limit=200))
    for headers in ({"origin": "http://evil.example"}, {"origin": "http://testserver:8080"},
                    {"origin": "null"}, {"origin": "", "referer": "http://evil.example/page"}):
        response = sign_in(http, "mod1", "moderator password", **headers)
        assert response.status_code == 403 and COOKIE not in response.cookies, headers
    response = http.post("/login", data={"username": "mod1", "password": "moderator password"},
                         headers={"origin": ""})  # neither Origin nor Referer
    assert response.status_code == 403
    assert len(client.audit_log(action=Action.SIGN_IN, limit=200)) == before  # not one sign-in happened
    assert sign_in(http, "mod1", "moderator password", origin="", referer=f"{ORIGIN}/login").status_code == 303
    for method, path in (("POST", "/logout"), ("POST", "/dashboard/gradio_api/queue/join"),
                         ("POST", "/dashboard/gradio_api/upload")):
        response = http.request(method, path, json={}, headers={"origin": "http://localhost:9999"})
        assert response.status_code == 403 and response.json() == {"error": "cross-site request refused"}
    assert http.get("/dashboard/config").status_code == 200  # the foreign /logout did not sign out


def test_sign_in_is_throttled_per_account(dashboard):
    http, client = dashboard
    for _ in range(5):
        assert sign_in(http, "mod3", "not the password").status_code == 401
    for _ in range(3):  # now even the right password is not checked
        response = sign_in(http, "mod3", "moderator password")
        assert response.status_code == 429 and int(response.headers["retry-after"]) > 0
        assert COOKIE not in response.cookies
    throttled = client.audit_log(action=Action.SIGN_IN_THROTTLED)
    assert [(e.actor, e.target, e.details["by"]) for e in throttled] == [("mod3", "user:mod3", "account")]
    assert sign_in(http, "mod4", "moderator password").status_code == 303  # other accounts are not locked
