"""Notes of a multipart request: note JSON in a form field, images as file parts, joined into Notes.

A note's `images` name its uploaded files by their part file names (`images=@photo.jpg` -> "photo.jpg"); a
name is only ever a key into this request's uploads, never a path. For /v1/check a note that names no
images takes every uploaded file, in order. Everything is validated (JSON, the note's fields, image counts,
each image's header) before the images are written into the request's folder (app/api/limits.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from fastapi import UploadFile
from pydantic import ValidationError

from app.api.errors import ApiError
from app.api.limits import RequestFolder, save_images
from app.notes import MAX_IMAGES, Note


def parse_json(text: str, field: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, TypeError) as e:
        raise ApiError(422, f"{field}: not JSON ({getattr(e, 'msg', e)})", field) from None


def build_notes(raw: Sequence[Any], uploads: Sequence[UploadFile], folder: RequestFolder, max_pixels: int, *,
                field: str, take_all_uploads: bool = False) -> list[Note]:
    """Notes from note dicts (`raw`, reported as `field[i]`; one note taking every upload: `field`) and the
    request's uploads. Raises ApiError:
    422 for bad JSON fields, an image named but not uploaded, an upload no note names, a repeated file name,
    a file that is not an image; 413 for more than MAX_IMAGES images on a note or an image over the limits."""
    names = [u.filename or f"upload-{i}" for i, u in enumerate(uploads)]
    if len(set(names)) != len(names):
        raise ApiError(422, "images: two uploaded files have the same file name", "images")
    wanted: list[list[str]] = []
    where_of = [field if take_all_uploads else f"{field}[{i}]" for i in range(len(raw))]
    for note, where in zip(raw, where_of):
        if not isinstance(note, dict):
            raise ApiError(422, f"{where}: expected a JSON object (a note)", where)
        images = note.get("images") or []
        if not isinstance(images, list) or not all(isinstance(x, str) for x in images):
            raise ApiError(422, f"{where}.images: expected a list of uploaded file names", f"{where}.images")
        if not images and take_all_uploads:
            images = list(names)
        if len(images) > MAX_IMAGES:
            raise ApiError(413, f"{where}.images: {len(images)} images, a note has at most {MAX_IMAGES}",
                           f"{where}.images")
        for j, name in enumerate(images):
            if name not in names:
                raise ApiError(422, f"{where}.images[{j}]: no uploaded file named {name[:200]!r}",
                               f"{where}.images[{j}]")
        _validate(note | {"images": []}, where)
        wanted.append(images)
    used = {n for images in wanted for n in images}
    for name in names:
        if name not in used:
            raise ApiError(422, f"images: the uploaded file {name[:200]!r} is not named by any note", "images")
    paths = dict(zip(names, save_images(uploads, folder, max_pixels, max_files=max(MAX_IMAGES, len(uploads)))))
    return [_validate(note | {"images": [str(paths[n]) for n in images]}, where)
            for note, images, where in zip(raw, wanted, where_of)]


def _validate(note: dict[str, Any], where: str) -> Note:
    try:
        return Note.model_validate(note)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        name = f"{where}.{loc}" if loc else where
        raise ApiError(422, f"{name}: {first['msg']}", name) from None
