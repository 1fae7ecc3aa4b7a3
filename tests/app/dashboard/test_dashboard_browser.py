"""The dashboard in headless Chromium against a real server process: sign in, check an uploaded real
photo that is a planted copy, see the match and its evidence, record a decision and find it in the audit
log; a wrong password is refused; a moderator cannot reach the admin pages; the Sign out button ends the
session (by POST: the old cookie is refused afterwards). The check page's screenshot
is kept in artifacts/dashboard/check_page.png."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import expect

from dashboard_support import ARTIFACTS, sign_in

pytestmark = pytest.mark.slow
UI_TIMEOUT_MS = 120_000  # a check encodes the note on a busy 2-core machine


def test_a_wrong_password_is_refused(page, dashboard_server):
    sign_in(page, dashboard_server, "mod1", "not-the-password")
    expect(page.locator("#login-error")).to_have_text("Wrong username or password.")
    assert "/login" in page.url
    page.goto(dashboard_server.url + "/dashboard/")
    expect(page.locator("#username")).to_be_visible()  # still sent to the sign-in form


def test_check_a_planted_copy_decide_and_find_it_in_the_audit_log(page, dashboard_server):
    sign_in(page, dashboard_server, "mod1")
    expect(page.locator("#header")).to_contain_text("Signed in as mod1", timeout=UI_TIMEOUT_MS)
    page.set_input_files("#check-images input[type=file]", str(dashboard_server.planted_copy))
    expect(page.locator("#check-images")).to_contain_text("astronaut_copy.jpg", timeout=UI_TIMEOUT_MS)
    page.locator("#check-title textarea, #check-title input").first.fill("Meeting an astronaut again")
    page.click("#check-button")

    expect(page.locator("#check-summary")).to_contain_text("Report #", timeout=UI_TIMEOUT_MS)
    expect(page.locator("#check-summary")).not_to_contain_text("clear")
    first_row = page.locator("#check-matches tbody tr").first
    expect(first_row).to_contain_text("astronaut")
    expect(page.locator("#check-stages")).to_contain_text(re.compile(r"global_\d+"))  # the Matryoshka stage
    expect(page.locator("#check-evidence img")).to_be_visible()  # query image beside the match, crops boxed
    expect(page.locator("#check-gallery img").first).to_be_visible()  # thumbnails of the matches
    assert page.locator("#check-text-evidence mark").count() > 0  # matched text pieces highlighted
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "check_page.png"), full_page=True)

    page.locator("#check-decision").get_by_text("duplicate", exact=True).click()
    page.locator("#check-comment textarea, #check-comment input").first.fill("planted copy: crop + overlay text")
    page.click("#check-decide")
    expect(page.locator("#check-status")).to_contain_text("Recorded duplicate", timeout=UI_TIMEOUT_MS)
    expect(first_row).to_contain_text("duplicate")

    page.get_by_role("tab", name="Audit log").click()
    page.click("#audit-refresh")
    table = page.locator("#audit-table")
    expect(table).to_contain_text("planted copy: crop + overlay text", timeout=UI_TIMEOUT_MS)
    expect(table.locator("tbody tr").first).to_contain_text("mod1")
    expect(table.locator("tbody tr").first).to_contain_text("decision")


def test_a_moderator_cannot_reach_the_admin_pages(page, dashboard_server):
    sign_in(page, dashboard_server, "mod1")
    expect(page.locator("#header")).to_contain_text("(moderator)", timeout=UI_TIMEOUT_MS)
    expect(page.locator("#header")).not_to_contain_text("Admin pages")
    response = page.goto(dashboard_server.url + "/admin/")
    assert response.status == 403
    expect(page.get_by_role("heading", name="Admins only")).to_be_visible()
    assert page.request.get(dashboard_server.url + "/admin/gradio_api/info").status == 403
    assert page.request.get(dashboard_server.url + "/dashboard/gradio_api/info").status == 200


def test_an_admin_manages_accounts(page, dashboard_server):
    sign_in(page, dashboard_server, "admin1", next_path="/admin/")
    expect(page.locator("#header")).to_contain_text("Signed in as admin1", timeout=UI_TIMEOUT_MS)
    expect(page.locator("#accounts-table")).to_contain_text("mod1", timeout=UI_TIMEOUT_MS)
    page.locator("#accounts-new-username textarea, #accounts-new-username input").first.fill("mod2")
    page.locator("#accounts-new-password input").fill("moderator-password-2")
    page.click("#accounts-add")
    expect(page.locator("#accounts-status")).to_contain_text("Added mod2 (moderator)", timeout=UI_TIMEOUT_MS)
    expect(page.locator("#accounts-table")).to_contain_text("mod2")
    page.goto(dashboard_server.url + "/dashboard/")
    page.get_by_role("tab", name="Audit log").click()
    page.locator("#audit-actor textarea, #audit-actor input").first.fill("admin1")
    page.click("#audit-refresh")
    expect(page.locator("#audit-table")).to_contain_text("user:mod2", timeout=UI_TIMEOUT_MS)


def test_sign_out_ends_the_session(page, dashboard_server):
    sign_in(page, dashboard_server, "mod1")
    expect(page.locator("#header")).to_contain_text("Signed in as mod1", timeout=UI_TIMEOUT_MS)
    cookie = next(c["value"] for c in page.context.cookies() if c["name"] == "uninote_session")
    page.click("#sign-out")
    expect(page.locator("#username")).to_be_visible(timeout=UI_TIMEOUT_MS)
    assert page.url.endswith("/login")
    page.goto(dashboard_server.url + "/dashboard/")
    expect(page.locator("#username")).to_be_visible()  # sent to the sign-in form again
    with httpx.Client(base_url=dashboard_server.url, timeout=10, cookies={"uninote_session": cookie}) as http:
        assert http.get("/dashboard/config").status_code == 401  # the old cookie, replayed


def test_the_server_refuses_anonymous_api_calls(dashboard_server):
    with httpx.Client(base_url=dashboard_server.url, timeout=10, headers={"origin": dashboard_server.url}) as http:
        for method, path in [("GET", "/dashboard/gradio_api/info"), ("POST", "/dashboard/gradio_api/queue/join"),
                             ("POST", "/dashboard/gradio_api/upload"), ("GET", "/admin/config")]:
            assert http.request(method, path).status_code == 401, path


def test_queue_library_and_thresholds_pages(page, dashboard_server):
    """Runs after the check above: its report is in the queue, the note's history and the thresholds table."""
    sign_in(page, dashboard_server, "mod1")
    expect(page.locator("#header")).to_contain_text("Signed in as mod1", timeout=UI_TIMEOUT_MS)

    page.get_by_role("tab", name="Review queue").click()
    queue = page.locator("#queue-table")
    expect(queue).to_contain_text("possible_infringement", timeout=UI_TIMEOUT_MS)
    report_id = queue.locator("tbody tr").first.locator("td").first.text_content().strip()  # newest report
    page.locator("#queue-report-id input").fill(report_id)
    page.click("#queue-open")
    expect(page.locator("#queue-summary")).to_contain_text("Report #", timeout=UI_TIMEOUT_MS)
    expect(page.locator("#queue-matches tbody tr").first).to_contain_text("duplicate")  # the decision shows
    expect(page.locator("#queue-evidence img")).to_be_visible()

    page.get_by_role("tab", name="Library").click()
    expect(page.locator("#library-table")).to_contain_text("astronaut", timeout=UI_TIMEOUT_MS)
    page.locator("#library-note-id textarea, #library-note-id input").first.fill("astronaut")
    page.click("#library-open")
    expect(page.locator("#library-elements")).to_contain_text("crop", timeout=UI_TIMEOUT_MS)
    expect(page.locator("#library-history")).to_contain_text("duplicate")

    page.get_by_role("tab", name="Thresholds").click()
    page.click("#thresholds-refresh")
    expect(page.locator("#thresholds-current")).to_contain_text("In force", timeout=UI_TIMEOUT_MS)
    expect(page.locator("#thresholds-infringement")).to_contain_text("0.75")
    # the decided match's report carries its raw score: raw vs normalised side by side, and the distributions
    expect(page.locator("#thresholds-normalisation-summary")).to_contain_text("whose report carries both")
    expect(page.locator("#thresholds-normalisation")).to_contain_text("0.75")
    expect(page.locator("#thresholds-distributions")).to_contain_text("0.9–1.0")
