"""Replay: file-path injection through every Gradio endpoint of the dashboard (issue 12, item 1).

A signed-in moderator sends Gradio a FileData whose `path` was never uploaded. Before the fix, Gradio copied
any such file into its cache while preprocessing the event's inputs (any input slot, whatever the
component), and the Check page then copied it into HOME/uploads and showed it as evidence. Now only files
this session uploaded may be named; anything else is refused 403 before a byte is read, and audit-logged.
A sentinel file whose access time betrays any read checks "never opened", not just "not copied".
"""

from __future__ import annotations

import os
import uuid

import pytest

from dashboard_attack_support import (Sentinel, audit_count, audit_text, dependencies, file_data, fn_index, join,
                                      result, start_dashboard, upload)

pytestmark = pytest.mark.slow
MOUNTS = {"/dashboard": "mod1", "/admin": "admin1"}


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    server = start_dashboard(tmp_path_factory.mktemp("file-paths"))
    yield server
    server.stop()


@pytest.fixture
def sentinel(tmp_path):
    return Sentinel(tmp_path / "var" / "tmp" / "secret.jpg")


def _copies(dashboard, name: str) -> list:
    """Files named `name` anywhere in HOME (Gradio's folder included), and anything in HOME/uploads."""
    return [p for p in dashboard.home.rglob("*")
            if p.is_file() and (p.name == name or (dashboard.home / "uploads") in p.parents)]


def test_check_upload_refuses_a_path_that_was_never_uploaded(dashboard, sentinel):
    http = dashboard.signed_in("mod1")
    index, dep = fn_index(http, "/dashboard", "check_upload")
    refused_before = audit_count(dashboard, "file_refused", "mod1")
    climbing = f"{dashboard.home}/gradio/{os.path.relpath(sentinel.path, dashboard.home / 'gradio')}"
    for files in ([file_data(sentinel.path)], [file_data(climbing)]):
        response = join(http, "/dashboard", index, [files, "title", "body"], uuid.uuid4().hex,
                        trigger_id=dep["targets"][0][0])
        assert response.status_code == 403, response.text[:300]
        assert "not uploaded in this session" in response.json()["error"]
    assert not sentinel.was_read()
    assert _copies(dashboard, "secret.jpg") == []  # nothing in HOME/uploads nor in Gradio's folder
    assert audit_count(dashboard, "file_refused", "mod1") == refused_before + 2
    assert f"file:{sentinel.path}" in audit_text(dashboard)
    sentinel.assert_detector_works()


@pytest.mark.parametrize("mount", list(MOUNTS))
def test_every_endpoint_and_input_slot_refuses_a_foreign_path(dashboard, sentinel, mount):
    """Every event of the mounted Blocks, the FileData in each of its input slots (Gradio moves files of
    any component to its cache), in event_data, and in the other JSON routes."""
    http = dashboard.signed_in(MOUNTS[mount])
    deps, tried = dependencies(http, mount), 0
    for index, dep in enumerate(deps):
        for slot in range(max(len(dep["inputs"]), 1)):
            data = [None] * len(dep["inputs"])
            if data:
                data[slot] = file_data(sentinel.path)
            event_data = None if data else {"index": 0, "value": {"image": file_data(sentinel.path)}}
            response = join(http, mount, index, data, uuid.uuid4().hex, event_data=event_data)
            assert response.status_code == 403, (mount, index, dep.get("api_name"), slot, response.text[:200])
            tried += 1
    assert tried >= len(deps)
    api = fn_index(http, "/dashboard", "check_upload")[0] if mount == "/dashboard" else 0
    hostile = [
        ("POST", f"{mount}/gradio_api/run/predict", {"data": [[file_data(sentinel.path)]], "fn_index": api}),
        ("POST", f"{mount}/gradio_api/component_server",
         {"component_id": 1, "fn_name": "x", "session_hash": "s", "data": file_data(sentinel.path)}),
        ("POST", f"{mount}/gradio_api/queue/join", {"data": [{"path": f"http://127.0.0.1:1/{sentinel.path.name}"}],
                                                    "fn_index": api, "session_hash": "s"}),
    ]
    if mount == "/dashboard":
        hostile.append(("POST", "/dashboard/gradio_api/call/check_upload",
                        {"data": [[file_data(sentinel.path)], "", ""]}))
    for method, path, body in hostile:
        response = http.request(method, path, json=body)
        assert response.status_code == 403, (path, response.status_code, response.text[:200])
    for path in (f"{mount}/gradio_api/file={sentinel.path}", f"{mount}/gradio_api/file={dashboard.database}",
                 f"{mount}/gradio_api/file={dashboard.home}/gradio/../uninote.db"):
        assert http.get(path).status_code == 403, path
    assert not sentinel.was_read()
    assert _copies(dashboard, "secret.jpg") == []


def test_uploaded_files_work_in_their_own_session_only(dashboard, sentinel, tmp_path):
    """The real flow still works: upload, then check the stored path. Another moderator's session cannot
    name that path (it is predictable: Gradio names the folder after the content's hash)."""
    owner, other = dashboard.signed_in("mod1"), dashboard.signed_in("mod2")
    stored = upload(owner, "/dashboard", sentinel.path)
    sentinel.arm()
    index, dep = fn_index(owner, "/dashboard", "check_upload")
    session = uuid.uuid4().hex
    assert join(other, "/dashboard", index, [[file_data(stored)], "", ""], session).status_code == 403
    response = join(owner, "/dashboard", index, [[file_data(stored)], "A red square", ""], session,
                    trigger_id=dep["targets"][0][0])
    assert response.status_code == 200, response.text[:300]
    message = result(owner, "/dashboard", session)
    assert message["success"], message
    assert "Report #" in str(message["output"]["data"][1])
    assert not sentinel.was_read()  # Gradio read its own stored copy, never the original
    assert len(list((dashboard.home / "uploads").rglob("*.jpg"))) == 1
