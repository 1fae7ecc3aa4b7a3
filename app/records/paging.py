"""Offset/limit validation shared by the records list functions."""

from __future__ import annotations

MAX_PAGE_SIZE = 1000


def check_page(offset: int, limit: int) -> None:
    """Raises ValueError unless 0 <= offset and 1 <= limit <= MAX_PAGE_SIZE (both ints)."""
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise ValueError(f"offset must be an int >= 0, got {offset!r}")
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"limit must be an int in 1..{MAX_PAGE_SIZE}, got {limit!r}")
