"""POST /v1/check: audit a note (JSON in the `note` field, images as `images` file parts) against the library
and its banks (app.banks.Banks.check). ?save=false audits without storing anything."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile

from app.api.deps import ApiContext, context, require
from app.api.errors import ApiError
from app.api.limits import RequestFolder
from app.api.note_uploads import build_notes, parse_json
from app.api.schemas import CheckOut, ErrorOut
from app.records.api_keys import ApiKey, Scope

router = APIRouter(prefix="/v1", tags=["check"])
ERRORS = {s: {"model": ErrorOut} for s in (401, 403, 409, 413, 422, 429, 503)}


@router.post("/check", response_model=CheckOut, responses=ERRORS)
def check_note(
    note: Annotated[str, Form(description='The note as JSON: {"note_id", "title", "body", "images": [uploaded '
                                          'file names], ...} (notes.jsonl format; images default to every upload)')],
    images: Annotated[list[UploadFile], File(description="The note's images (at most 9)")] = [],  # noqa: B006
    save: Annotated[bool, Query(description="Keep the report (and count bank hits, send webhooks)")] = True,
    limit: Annotated[int, Query(ge=1, le=100, description="Open-library matches reported")] = 10,
    key: ApiKey = Depends(require(Scope.CHECK)),
    ctx: ApiContext = Depends(context),
) -> dict:
    raw = parse_json(note, "note")
    if not isinstance(raw, dict):
        raise ApiError(422, "note: expected a JSON object (a note)", "note")
    t0 = time.perf_counter()
    folder = RequestFolder(ctx.settings.home)
    try:
        (parsed,) = build_notes([raw], images, folder, ctx.settings.api_max_image_pixels, field="note",
                                take_all_uploads=True)
        stages: dict[str, float] = {"upload": time.perf_counter() - t0}
        result = ctx.banks.check(parsed, limit=limit, save=save, stages=stages)
    finally:
        folder.discard()
    for stage, seconds in stages.items():
        ctx.metrics.stage.labels(stage).observe(seconds)
    ctx.metrics.checks.labels(result.report.verdict).inc()
    for hits in result.banks:
        ctx.metrics.bank_hits.labels(hits.bank).inc()
    return result.to_dict()
