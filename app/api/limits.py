"""Request limits of the API: body size (an ASGI middleware) and uploaded images (per-request folders).

Body size: a Content-Length over API_MAX_BODY_BYTES is refused before anything is read; a body that grows
past it while streaming (chunked) is cut off and answered 413 too. Images: each upload is read in chunks
up to encoder.images.MAX_IMAGE_BYTES, its header checked with Pillow (an image? width x height within
API_MAX_IMAGE_PIXELS?) before any pixel is decoded, and written as `<n>.<format>` (names made here, never
the client's) into a fresh per-request folder HOME/api/requests/<uuid4>/: no uploaded name or path ever
reaches the file system.
"""

from __future__ import annotations

import io
import json
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

from fastapi import UploadFile
from PIL import Image, UnidentifiedImageError

from app.api.errors import ApiError
from app.notes import MAX_IMAGES
from encoder.images import MAX_IMAGE_BYTES

REQUESTS_DIR = ("api", "requests")
CHUNK = 1 << 20
_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tif"}


class BodySizeLimit:
    """Pure ASGI middleware: 413 {"error", "field": "body"} for bodies over `max_bytes`."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_bytes
            except ValueError:
                return await self._refuse(send, 400, "Content-Length is not a number", "content-length")
            if too_big:
                return await self._refuse(send, 413, self._message(), "body")
        seen, over = 0, False

        async def limited_receive():
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    over = True
                    return {"type": "http.disconnect"}
            return message

        started = False

        async def guarded_send(message):
            nonlocal started
            if over and not started:
                started = True
                return await self._refuse(send, 413, self._message(), "body")
            if over:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, limited_receive, guarded_send)
        if over and not started:
            await self._refuse(send, 413, self._message(), "body")

    def _message(self) -> str:
        return f"request body over the {self.max_bytes}-byte limit (API_MAX_BODY_BYTES)"

    @staticmethod
    async def _refuse(send, status: int, error: str, field: str) -> None:
        body = json.dumps({"error": error, "field": field}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class RequestFolder:
    """A fresh folder HOME/api/requests/<uuid4>/ for one request's files; `discard()` removes it."""

    def __init__(self, home: Path):
        self.path = home.joinpath(*REQUESTS_DIR, uuid.uuid4().hex)
        self.path.mkdir(parents=True, exist_ok=False)

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def save_images(files: Sequence[UploadFile], folder: RequestFolder, max_pixels: int, field: str = "images",
                max_files: int = MAX_IMAGES) -> list[Path]:
    """Validate and write uploaded images into `folder`, in order; returns their paths.
    Raises ApiError: 413 for too many files, an image over MAX_IMAGE_BYTES or max_pixels (a pixel bomb);
    422 for a file that is not an image."""
    if len(files) > max_files:
        raise ApiError(413, f"{len(files)} images uploaded, at most {max_files} are accepted", field)
    paths = []
    for i, upload in enumerate(files):
        where = f"{field}[{i}]"
        data = _read_bounded(upload, where)
        if not data:
            raise ApiError(422, f"{where}: empty file", where)
        fmt = _check_header(data, max_pixels, where)
        path = folder.path / f"{i}.{fmt}"
        path.write_bytes(data)
        paths.append(path)
    return paths


def _read_bounded(upload: UploadFile, where: str) -> bytes:
    chunks, size = [], 0
    upload.file.seek(0)
    while True:
        chunk = upload.file.read(CHUNK)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_IMAGE_BYTES:
            raise ApiError(413, f"{where}: image over the {MAX_IMAGE_BYTES}-byte limit", where)
        chunks.append(chunk)


def _check_header(data: bytes, max_pixels: int, where: str) -> str:
    try:
        with Image.open(io.BytesIO(data)) as im:  # reads the header only
            width, height = im.size
            fmt = im.format or ""
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ApiError(413, f"{where}: image declares too many pixels (decompression bomb refused)", where) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise ApiError(422, f"{where}: not an image (no decoder recognises the data)", where) from None
    if width * height > max_pixels:
        raise ApiError(413, f"{where}: {width}x{height} = {width * height} pixels, over the {max_pixels}-pixel "
                            "limit (API_MAX_IMAGE_PIXELS)", where)
    if fmt not in _FORMATS:
        raise ApiError(422, f"{where}: image format {fmt or 'unknown'!r} is not accepted ({sorted(_FORMATS)})", where)
    return _FORMATS[fmt]
