"""What every dashboard page needs: the client (the same functions the Python client exposes), Gradio's
upload folder, the page size, and who is signed in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import gradio as gr

from app.client import UniNoteClient
from app.records import users
from app.records.users import User

PAGE_SIZE = 25  # rows per page of every list: no page loads the whole library
GRADIO_FOLDER = "gradio"  # HOME/gradio: Gradio's upload folder and cache (app/dashboard/app.py)


@dataclass
class DashboardContext:
    client: UniNoteClient
    upload_root: Path | None = None  # Gradio's upload folder, the only place uploads are read from; None = HOME/gradio
    page_size: int = PAGE_SIZE

    def __post_init__(self) -> None:
        if self.upload_root is None:
            self.upload_root = (self.client.settings.home / GRADIO_FOLDER).resolve()

    def user(self, request: gr.Request | None) -> User:
        """The signed-in account of a Gradio request. Raises gr.Error when there is none (the ASGI guard
        already refuses such requests; this is the second lock)."""
        name = getattr(request, "username", None) if request is not None else None
        if name:
            with self.client.library.sessions() as s:
                user = users.get_user(s, name)
            if user is not None and user.active:
                return user
        raise gr.Error("Sign in first.")


def parse_day(text: str | None) -> datetime | None:
    """'YYYY-MM-DD' -> that day's 00:00 UTC; blank -> None. Raises gr.Error naming the bad text."""
    if not text or not text.strip():
        return None
    try:
        return datetime.strptime(text.strip(), "%Y-%m-%d").replace(tzinfo=timezone.utc)
    except ValueError:
        raise gr.Error(f"date {text!r}: expected YYYY-MM-DD") from None


def when(value: datetime | None) -> str:
    """A UTC timestamp as 'YYYY-MM-DD HH:MM' ('' for None)."""
    return "" if value is None else value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M")


def page_label(page: int, page_size: int, n_rows: int, total: int | None = None) -> str:
    """'page 2 · rows 26-50 of 120' (total left out when unknown)."""
    first = page * page_size + 1 if n_rows else 0
    of = f" of {total}" if total is not None else ""
    return f"page {page + 1} · rows {first}-{page * page_size + n_rows}{of}"
