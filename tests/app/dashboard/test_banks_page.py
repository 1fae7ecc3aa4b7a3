"""The Banks page's rows come from the same Banks functions the API calls (real library, real records)."""

from __future__ import annotations

from pathlib import Path

import skimage.data
from PIL import Image

from app.client import UniNoteClient
from app.dashboard.app import build_dashboard
from app.dashboard.banks_page import bank_rows, delivery_rows, entry_rows
from app.dashboard.context import DashboardContext
from app.settings import Settings


def test_banks_page_lists_banks_entries_and_hits(tmp_path: Path):
    photo = tmp_path / "rocket.jpg"
    Image.fromarray(skimage.data.rocket()).convert("RGB").save(photo)
    with UniNoteClient.open(Settings(UNINOTE_HOME=tmp_path / "home", ocr_enabled=False)) as client:
        client.index([{"note_id": "rocket", "title": "Launch day", "images": [str(photo)]}])
        client.banks.create("claims", "risk", "remove", actor="cli", infringement_threshold=0.7)
        client.banks.add_note("claims", "rocket", actor="cli")
        client.banks.check({"note_id": "q", "title": "rocket", "images": [str(photo)]})
        ctx = DashboardContext(client)
        assert bank_rows(ctx) == [["claims", "risk", "remove", "yes", "", 0.7, 1, 1, ""]]
        (entry,) = entry_rows(ctx, "claims", 0)
        assert entry[1:3] == ["library", "rocket"] and entry[6] == 1
        assert delivery_rows(ctx, "claims") == []
        build_dashboard(ctx)  # the page is part of the moderators' Blocks
