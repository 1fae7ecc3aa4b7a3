"""Notes: POST /v1/notes (index a batch), DELETE /v1/notes/{note_id}, GET /v1/notes/{note_id}/matches."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Path, Query, UploadFile

from app.api.deps import ApiContext, context, require
from app.api.errors import ApiError
from app.api.limits import RequestFolder
from app.api.note_uploads import build_notes, parse_json
from app.api.schemas import DeletedOut, ErrorOut, IndexOut, MatchRecordOut
from app.notes import MAX_IMAGES, write_notes
from app.records.api_keys import ApiKey, Scope

router = APIRouter(prefix="/v1/notes", tags=["notes"])
ERRORS = {s: {"model": ErrorOut} for s in (401, 403, 404, 413, 422, 429, 503)}
NoteId = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:\-]+$")]


@router.post("", response_model=IndexOut, responses=ERRORS)
def index_notes(
    notes: Annotated[str, Form(description="A JSON array of notes (notes.jsonl format); each note's `images` "
                                           "name its uploaded files")],
    images: Annotated[list[UploadFile], File(description="The notes' images")] = [],  # noqa: B006
    force: Annotated[bool, Query(description="Re-index notes whose content did not change")] = False,
    key: ApiKey = Depends(require(Scope.INDEX)),
    ctx: ApiContext = Depends(context),
) -> dict:
    """Index a batch. The notes and their images are kept as a notes folder (notes.jsonl + images) under
    HOME/api/requests/, the notes' registry source, so workers can re-read them (re-index)."""
    raw = parse_json(notes, "notes")
    if not isinstance(raw, list) or not raw:
        raise ApiError(422, "notes: expected a non-empty JSON array of notes", "notes")
    most = ctx.settings.api_max_batch_notes
    if len(raw) > most:
        raise ApiError(413, f"notes: {len(raw)} notes, at most {most} per request (API_MAX_BATCH_NOTES)", "notes")
    if len(images) > most * MAX_IMAGES:
        raise ApiError(413, f"images: {len(images)} files, at most {most * MAX_IMAGES} per request", "images")
    folder = RequestFolder(ctx.settings.home)
    try:
        batch = build_notes(raw, images, folder, ctx.settings.api_max_image_pixels, field="notes")
        source = write_notes(batch, folder.path)
        result = ctx.client.index(batch, source=str(source), force=force)
    except BaseException:
        folder.discard()
        raise
    if not result.indexed:
        folder.discard()
    return {"indexed": result.indexed, "skipped": result.skipped, "failed": result.failed}


@router.delete("/{note_id}", response_model=DeletedOut, responses=ERRORS)
def delete_note(note_id: NoteId, key: ApiKey = Depends(require(Scope.INDEX)),
                ctx: ApiContext = Depends(context)) -> dict:
    """Remove a note's vectors and mark it deleted (404 for a note the registry never saw)."""
    ctx.client.delete(note_id)
    return {"note_id": note_id, "deleted": True}


@router.get("/{note_id}/matches", response_model=list[MatchRecordOut], responses=ERRORS)
def note_matches(note_id: NoteId, limit: Annotated[int, Query(ge=1, le=1000)] = 200,
                 key: ApiKey = Depends(require(Scope.DECIDE)), ctx: ApiContext = Depends(context)) -> list:
    """Every recorded match involving the note, highest score first, each with its latest decision."""
    return ctx.client.get_matches(note_id)[:limit]
