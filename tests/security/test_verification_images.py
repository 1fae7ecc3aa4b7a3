"""Attack replay: untrusted pixels reaching geometric verification (issue 14).

Verification decodes a library note's image files again at check time, long after they were checked at
indexing, and gets the query's pixels from whoever submitted it. Three attacks: a stored image file swapped
for a decompression bomb (a PNG header declaring 30,000 x 30,000 pixels in a few hundred bytes), one swapped
for corrupt bytes, and a huge in-memory image handed to `verify`. Each is refused with one line naming what
was wrong; the check still finishes with its cosine evidence, and nothing stored is touched.
"""

from __future__ import annotations

import logging
import struct
import zlib

import pytest
import skimage.data
from PIL import Image

from app.geometric_verification import MAX_PIXELS, verify
from tests.app.test_match_verification import pasted_query, photo_library


def png_bomb(width: int, height: int) -> bytes:
    """A valid PNG header declaring width x height 8-bit grey pixels, with a tiny zlib stream."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + chunk(b"IEND", b"")


@pytest.fixture
def library(tmp_path):
    lib = photo_library(tmp_path)
    yield lib, tmp_path
    lib.close()


@pytest.mark.parametrize("swap", ["bomb", "corrupt"])
def test_a_swapped_library_image_is_skipped_with_one_line_and_the_check_finishes(library, swap, caplog):
    lib, tmp = library
    target = tmp / "coffee.jpg"  # n1's image, the one the query pastes
    target.write_bytes(png_bomb(30_000, 30_000) if swap == "bomb" else b"\xff\xd8\xff\xe0 not really a jpeg")
    with caplog.at_level(logging.WARNING, logger="app.match_verification"):
        report = lib.check(pasted_query(tmp), save=False)
    lines = [r.getMessage() for r in caplog.records if r.name == "app.match_verification"]
    assert len(lines) == 1 and "note 'n1' image 0" in lines[0], lines
    assert ("decompression bomb" in lines[0] or "pixels" in lines[0]) if swap == "bomb" else "corrupt" in lines[0]
    assert "\n" not in lines[0]
    match = next(m for m in report.matches if m.note_id == "n1")  # still found by its stored vectors
    assert all(e.inliers is None for e in match.evidence)
    assert lib.store.note_vectors(["n1"], lib.encoder.dims[-1])  # nothing stored was touched


def test_a_huge_in_memory_image_is_refused_before_its_pixels_are_touched():
    huge = Image.new("1", (12_000, 10_000))  # 120 MP at 1 bit per pixel: 15 MB here, 360 MB as RGB
    assert huge.width * huge.height > MAX_PIXELS
    with pytest.raises(ValueError, match=r"^image too large to verify: 12000x10000 px") as err:
        verify(huge, Image.fromarray(skimage.data.coffee()))
    assert "\n" not in str(err.value)
