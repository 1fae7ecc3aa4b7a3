"""Safe image loading: one untrusted file (or bytes) in, one decoded RGB `PIL.Image` out, or an InputError.

Every check happens before the expensive step it guards: the file size before reading, the header's
pixel count before decoding (decompression bombs), then a forced full decode so a truncated or corrupt
file fails here rather than being silently padded (if another module set Pillow's global
`ImageFile.LOAD_TRUNCATED_IMAGES`, it is switched off for the duration of our decode).
Source: Pillow docs, "Image.open" and "Decompression bomb protection".
"""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from encoder.types import InputError

MAX_IMAGE_BYTES = 20 * 1024 * 1024  # 20 MiB on disk / in memory
MAX_IMAGE_PIXELS = 40_000_000  # width * height declared in the header
MIN_IMAGE_SIDE = 16  # pixels; smaller images carry no usable content

_BACKGROUND = (255, 255, 255)  # transparent pixels are composited onto white
_STRICT_LOCK = threading.Lock()


def load_image(
    source: Path | str | bytes, *, note_id: str | None = None, field: str = "images"
) -> Image.Image:
    """Decode one image safely.

    source: a file path or the encoded bytes (JPEG, PNG, WebP, GIF, ... whatever Pillow reads).
    Returns an RGB `PIL.Image.Image`, EXIF-orientation applied, the first frame of an animation, alpha
    composited onto white; fully decoded (no file handle kept open).
    Raises encoder.types.InputError(note_id, field, reason) when the file is missing, over
    MAX_IMAGE_BYTES, not an image, corrupt or truncated, declares more than MAX_IMAGE_PIXELS, or is
    smaller than MIN_IMAGE_SIDE on either side.
    """
    data = _read_bounded(source, note_id, field)
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only (Pillow raises on > 2x its own limit)
        _check_header(image, note_id, field)  # our stricter limit, before any pixel is decoded
        image.seek(0)  # first frame of an animation
        _strict_load(image)  # force the full decode: truncated/corrupt data raises here
        image = ImageOps.exif_transpose(image) or image
        rgb = _to_rgb(image)
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise InputError(note_id, field, f"decompression bomb refused ({e})") from e
    except UnidentifiedImageError as e:
        raise InputError(note_id, field, "not an image (no decoder recognises the data)") from e
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as e:
        raise InputError(note_id, field, f"corrupt or truncated image ({e})") from e
    return rgb


def _read_bounded(source: Path | str | bytes, note_id: str | None, field: str) -> bytes:
    """The raw bytes, refusing anything over MAX_IMAGE_BYTES before reading it."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if len(data) > MAX_IMAGE_BYTES:
            raise InputError(note_id, field, f"image is {len(data)} bytes, over the {MAX_IMAGE_BYTES}-byte limit")
        if not data:
            raise InputError(note_id, field, "empty image data")
        return data
    if not isinstance(source, (str, os.PathLike)):
        raise InputError(note_id, field, f"expected a path or bytes, got {type(source).__name__}")
    path = Path(source)
    try:
        size = path.stat().st_size
    except FileNotFoundError as e:
        raise InputError(note_id, field, f"file not found: {path}") from e
    except OSError as e:
        raise InputError(note_id, field, f"cannot read {path}: {e.strerror or e}") from e
    if not path.is_file():
        raise InputError(note_id, field, f"not a regular file: {path}")
    if size > MAX_IMAGE_BYTES:
        raise InputError(note_id, field, f"file {path} is {size} bytes, over the {MAX_IMAGE_BYTES}-byte limit")
    if size == 0:
        raise InputError(note_id, field, f"empty file: {path}")
    try:
        with path.open("rb") as f:
            data = f.read(MAX_IMAGE_BYTES + 1)
    except OSError as e:
        raise InputError(note_id, field, f"cannot read {path}: {e.strerror or e}") from e
    if len(data) > MAX_IMAGE_BYTES:  # the file grew after stat()
        raise InputError(note_id, field, f"file {path} is over the {MAX_IMAGE_BYTES}-byte limit")
    return data


def _check_header(image: Image.Image, note_id: str | None, field: str) -> None:
    """Refuse a declared size over MAX_IMAGE_PIXELS or under MIN_IMAGE_SIDE before any pixel is decoded."""
    w, h = image.size
    if w <= 0 or h <= 0:
        raise InputError(note_id, field, f"invalid image size {w}x{h}")
    if w * h > MAX_IMAGE_PIXELS:
        raise InputError(
            note_id, field,
            f"decompression bomb refused: header declares {w}x{h} = {w * h} pixels, over {MAX_IMAGE_PIXELS}",
        )
    if min(w, h) < MIN_IMAGE_SIDE:
        raise InputError(note_id, field, f"image too small: {w}x{h}, need at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE}")


def _strict_load(image: Image.Image) -> None:
    """image.load() with Pillow's truncated-image padding off, even if another module switched it on."""
    if not ImageFile.LOAD_TRUNCATED_IMAGES:
        image.load()
        return
    with _STRICT_LOCK:  # the flag is process-global: restore it whatever happens
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        try:
            image.load()
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = True


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB copy; transparency is composited onto white rather than dropped to black."""
    if image.mode == "RGB":
        return image.copy()
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, _BACKGROUND)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    if image.mode.startswith("I") or image.mode == "F":  # 16/32-bit grey: rescale to 8 bits
        grey = np.asarray(image, dtype=np.float32)
        grey = grey * (255.0 / max(float(grey.max()), 1.0))
        image = Image.fromarray(grey.clip(0, 255).astype(np.uint8), mode="L")
    return image.convert("RGB")
