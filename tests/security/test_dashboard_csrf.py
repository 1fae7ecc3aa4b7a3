"""Replay: cross-site request forgery against a real dashboard process (issue 12, item 6).

Before the fix, a page on any site could sign a victim's browser in as the attacker (a foreign-origin POST
/login with no token was accepted) and sign them out with an <img src=/logout>; the Gradio routes had only
SameSite=Lax, which does not tell other ports of localhost apart. Now every state-changing request must
carry the dashboard's own Origin (or Referer), and signing out is a POST.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from dashboard_attack_support import ACCOUNTS, audit_count, file_data, fn_index, join, start_dashboard

pytestmark = pytest.mark.slow
FOREIGN = ["http://evil.example", "http://localhost:9999", "null"]


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    server = start_dashboard(tmp_path_factory.mktemp("csrf"))
    yield server
    server.stop()


def _form_post(url: str, path: str, data: dict, cookies=None, **headers) -> httpx.Response:
    """A POST as another site's page makes it: a form submission with that site's Origin (or none)."""
    return httpx.post(url + path, data=data, headers=headers, cookies=cookies, follow_redirects=False, timeout=60)


def test_a_foreign_origin_cannot_sign_anyone_in(dashboard):
    credentials = {"username": "mod1", "password": ACCOUNTS["mod1"][1], "next": "/dashboard/"}
    for origin in FOREIGN:
        response = _form_post(dashboard.url, "/login", credentials, origin=origin)
        assert response.status_code == 403 and "uninote_session" not in response.cookies, origin
    response = _form_post(dashboard.url, "/login", credentials, referer="http://evil.example/login-csrf.html")
    assert response.status_code == 403
    response = _form_post(dashboard.url, "/login", credentials)  # neither Origin nor Referer
    assert response.status_code == 403
    assert audit_count(dashboard, "sign_in", "mod1") == 0
    assert _form_post(dashboard.url, "/login", credentials, origin=dashboard.url).status_code == 303


def test_a_foreign_origin_cannot_sign_out_or_act(dashboard):
    http = dashboard.signed_in("mod1")
    cookies = {"uninote_session": http.cookies["uninote_session"]}
    assert httpx.get(dashboard.url + "/logout", cookies=cookies, timeout=60).status_code == 200  # <img src=/logout>
    for origin in FOREIGN:
        assert _form_post(dashboard.url, "/logout", {}, cookies=cookies, origin=origin).status_code == 403
    index, dep = fn_index(http, "/dashboard", "check_stored")
    body = {"data": ["some-note"], "fn_index": index, "session_hash": uuid.uuid4().hex,
            "trigger_id": dep["targets"][0][0]}
    for origin in FOREIGN:
        response = httpx.post(dashboard.url + "/dashboard/gradio_api/queue/join", json=body, cookies=cookies,
                              headers={"origin": origin}, timeout=60)
        assert response.status_code == 403, origin
        response = httpx.post(dashboard.url + "/dashboard/gradio_api/upload", cookies=cookies,
                              files={"files": ("x.jpg", b"\xff\xd8\xff", "image/jpeg")}, headers={"origin": origin},
                              timeout=60)
        assert response.status_code == 403, origin
    assert http.get("/dashboard/config").status_code == 200  # still signed in
    assert join(http, "/dashboard", index, ["some-note"], uuid.uuid4().hex).status_code == 200  # own origin works
    assert join(http, "/dashboard", index, [file_data("/etc/hostname")], uuid.uuid4().hex).status_code == 403
