"""The dashboard's Backfills tab (issue 12, item 11): a job whose workers all died reads `running` forever;
the tab shows it stalled with the command that resumes it. Rows from UniNoteClient.backfills, and the tab in
headless Chromium against the real server of the browser tests."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import expect
from sqlalchemy import update

from app.records.backfills import BackfillRow, advance_backfill, create_backfill
from app.records.db import make_engine, migrate, session_factory, transaction
from app.records.models import utcnow
from dashboard_support import sign_in


def plant_jobs(database_url: str) -> tuple[int, int]:
    """A job stalled 10 minutes after two 2-second batches (its workers were SIGKILLed), and a live one.
    Returns (stalled id, live id)."""
    migrate(database_url)
    engine = make_engine(database_url)
    try:
        with transaction(session_factory(engine)) as s:
            dead = create_backfill(s, kind="backfill", source="/notes/killed/notes.jsonl", batch_size=4, total=40)
            advance_backfill(s, dead.id, from_cursor=0, to_cursor=8, to_cursor_bytes=900, done=8, elapsed_s=4.0)
            s.execute(update(BackfillRow).where(BackfillRow.id == dead.id)
                      .values(updated_at=utcnow() - timedelta(minutes=10)))
            live = create_backfill(s, kind="backfill", source="/notes/live/notes.jsonl", batch_size=4, total=40)
    finally:
        engine.dispose()
    return dead.id, live.id


def test_rows_mark_the_stalled_job_with_its_resume_command(tmp_path):
    from app.client import UniNoteClient
    from app.dashboard.backfills_page import HEADERS, job_rows
    from app.dashboard.context import DashboardContext
    from app.settings import Settings

    settings = Settings(UNINOTE_HOME=tmp_path / "home", ocr_enabled=False)
    dead, live = plant_jobs(settings.resolved_database_url)
    with UniNoteClient.open(settings) as client:
        rows = {row[0]: dict(zip(HEADERS, row)) for row in job_rows(DashboardContext(client))}
    assert rows[dead]["status"] == "running" and rows[dead]["progress"] == "8/40"
    assert rows[dead]["stalled"].startswith("STALLED 6") and rows[dead]["stalled"].endswith(
        f"uninote backfill --resume {dead}")
    assert rows[live]["stalled"] == ""


@pytest.mark.slow
def test_the_backfills_tab_shows_the_stalled_job(page, dashboard_server):
    dead, _ = plant_jobs(f"sqlite:///{(dashboard_server.home / 'uninote.db').as_posix()}")
    sign_in(page, dashboard_server, "mod1")
    expect(page.locator("#header")).to_contain_text("Signed in as mod1", timeout=120_000)
    page.get_by_role("tab", name="Backfills").click()
    page.click("#backfills-refresh")
    table = page.locator("#backfills-table")
    expect(table).to_contain_text(f"uninote backfill --resume {dead}", timeout=120_000)
    expect(table).to_contain_text("/notes/killed/notes.jsonl")
