"""The Banks tab in headless Chromium against the real dashboard server of the browser tests (issue 15).

A risk bank holding the library's astronaut note, with a webhook and one logged delivery, is put in the
records the server reads (the same records functions `uninote bank` and the API end in). A moderator checks
the planted copy on the Check tab (the dashboard's check is the banks' check: the hit is counted), then
the Banks tab lists the bank with its hit, and opening it shows its entry and its webhook delivery log.
The Backfills tab has its own browser test (test_backfills_page.py::test_the_backfills_tab_shows_the_stalled_job).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from app.dashboard.banks_page import BANK_HEADERS, ENTRY_HEADERS
from app.records import banks as records
from app.records.banks import DeliveryStatus, EntryOrigin
from app.records.db import make_engine, session_factory, transaction
from dashboard_support import sign_in

pytestmark = pytest.mark.slow
UI_TIMEOUT_MS = 120_000  # a check encodes the note on a busy 2-core machine
BANK = "browser-claims"


@pytest.fixture
def planted_bank(dashboard_server):
    """The bank, its entry and a delivery that failed with HTTP 500, in the server's records; removed after."""
    engine = make_engine(f"sqlite:///{(dashboard_server.home / 'uninote.db').as_posix()}")
    sessions = session_factory(engine)
    try:
        with transaction(sessions) as s:
            bank = records.create_bank(s, BANK, "risk", "remove", infringement_threshold=0.6,
                                       webhook_url="http://127.0.0.1:9/hook", webhook_secret="s" * 24)
            entry, _ = records.add_entry(s, BANK, origin=EntryOrigin.LIBRARY, added_by="cli", note_id="astronaut")
            delivery = records.create_delivery(s, bank.id, "http://127.0.0.1:9/hook", "bank.match", {"event": "x"})
            records.record_attempt(s, delivery, status=DeliveryStatus.FAILED, status_code=500,
                                   error="HTTP 500 from the receiver")
        yield entry.id, delivery
    finally:
        with transaction(sessions) as s:
            records.delete_bank(s, BANK)
        engine.dispose()


def test_the_banks_tab_lists_the_bank_its_hit_entry_and_deliveries(page, dashboard_server, planted_bank):
    entry_id, delivery_id = planted_bank
    sign_in(page, dashboard_server, "mod1")
    expect(page.locator("#header")).to_contain_text("Signed in as mod1", timeout=UI_TIMEOUT_MS)

    page.set_input_files("#check-images input[type=file]", str(dashboard_server.planted_copy))
    expect(page.locator("#check-images")).to_contain_text("astronaut_copy.jpg", timeout=UI_TIMEOUT_MS)
    page.click("#check-button")
    expect(page.locator("#check-summary")).to_contain_text("Report #", timeout=UI_TIMEOUT_MS)
    expect(page.locator("#check-matches")).to_contain_text("astronaut")

    page.reload()  # the bank table is read when the page loads
    expect(page.locator("#header")).to_contain_text("Signed in as mod1", timeout=UI_TIMEOUT_MS)
    page.get_by_role("tab", name="Banks").click()
    row = page.locator("#banks-table tbody tr").filter(has_text=BANK)
    expect(row).to_have_count(1, timeout=UI_TIMEOUT_MS)
    cells = row.locator("td")
    expect(cells.nth(BANK_HEADERS.index("kind"))).to_contain_text("risk")
    expect(cells.nth(BANK_HEADERS.index("action"))).to_contain_text("remove")
    expect(cells.nth(BANK_HEADERS.index("entries"))).to_have_text(re.compile(r"^\s*1\s*$"))
    expect(cells.nth(BANK_HEADERS.index("hits"))).to_have_text(re.compile(r"^\s*1\s*$"))  # the check above

    page.locator("#banks-name textarea, #banks-name input").first.fill(BANK)
    page.click("#banks-show")
    entry = page.locator("#banks-entries tbody tr").filter(has_text="astronaut")
    expect(entry).to_have_count(1, timeout=UI_TIMEOUT_MS)
    expect(entry.locator("td").nth(ENTRY_HEADERS.index("entry"))).to_have_text(re.compile(rf"^\s*{entry_id}\s*$"))
    expect(entry.locator("td").nth(ENTRY_HEADERS.index("origin"))).to_contain_text("library")
    expect(entry.locator("td").nth(ENTRY_HEADERS.index("hits"))).to_have_text(re.compile(r"^\s*1\s*$"))
    deliveries = page.locator("#banks-deliveries").get_by_role("row")  # a wrapped table: ARIA grid rows
    planted = deliveries.filter(has_text="HTTP 500 from the receiver")
    expect(planted).to_have_count(1, timeout=UI_TIMEOUT_MS)
    expect(planted).to_contain_text("failed")
    expect(planted).to_contain_text(str(delivery_id))
    # the check's own delivery: queued by the banks' check, refused by the SSRF guard (127.0.0.1, no allowance)
    refused = deliveries.filter(has_text="not sent: webhook_url: 127.0.0.1 is a loopback address")
    for _ in range(30):  # the delivery runs on the dashboard's background thread: reload the log until it is in
        if refused.count() == 1:
            break
        page.click("#banks-show")
        page.wait_for_timeout(1000)
    expect(refused).to_have_count(1)
