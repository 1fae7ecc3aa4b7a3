"""Split a note body into text pieces (local BODY elements): sentence-ish, Chinese or English.

Sentences end at 。！？；!?; newlines, or a '.' followed by whitespace; consecutive short sentences are
packed into one piece up to `max_chars`; a sentence longer than that is cut at a comma/space near the
limit, else hard. The title is never split: it is its own element (see encoder.inprocess).
"""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"(?<=[。！？；!?;…])|(?<=\.)(?=\s)|\n+")
_SOFT_BREAK = re.compile(r"[，、,：:\s]")


def split_body(body: str, max_chars: int = 160, max_pieces: int = 16) -> list[str]:
    """body -> at most max_pieces non-empty stripped strings of at most max_chars characters each.

    Raises ValueError if max_chars or max_pieces < 1. An empty/blank body gives [].
    """
    if max_chars < 1 or max_pieces < 1:
        raise ValueError(f"max_chars and max_pieces must be >= 1, got {max_chars}, {max_pieces}")
    sentences = [s.strip() for s in _SENTENCE_END.split(body or "")]
    pieces: list[str] = []
    current = ""
    for sentence in (s for s in sentences if s):
        for part in _cut(sentence, max_chars):
            joined = f"{current}{_joiner(current, part)}{part}" if current else part
            if len(joined) <= max_chars:
                current = joined
            else:
                pieces.append(current)
                current = part
            if len(pieces) >= max_pieces:
                return pieces
    if current:
        pieces.append(current)
    return pieces[:max_pieces]


def _cut(sentence: str, max_chars: int) -> list[str]:
    """One sentence -> parts of <= max_chars, cut at the last soft break in the window when there is one."""
    parts = []
    while len(sentence) > max_chars:
        window = sentence[: max_chars + 1]
        breaks = [m.end() for m in _SOFT_BREAK.finditer(window) if m.end() > max_chars // 2]
        cut = min(breaks[-1], max_chars) if breaks else max_chars
        parts.append(sentence[:cut].strip())
        sentence = sentence[cut:].strip()
    if sentence:
        parts.append(sentence)
    return [p for p in parts if p]


def _joiner(left: str, right: str) -> str:
    """A space between two Latin-script sentences, nothing between CJK ones."""
    return " " if left[-1:].isascii() and right[:1].isascii() else ""
