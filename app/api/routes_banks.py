"""Banks: list / create / change / delete, entries, hash-list import, bank file export and import, the
webhook delivery log. Reading needs the `check` scope, changing `admin`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Path, Query, UploadFile

from app.api.deps import ApiContext, context, require
from app.api.errors import ApiError
from app.api.note_uploads import parse_json
from app.api.schemas import (BankEntryOut, BankIn, BankOut, BankPatch, DeliveryOut, EntryAddedOut, EntryIn,
                             ErrorOut, ImportOut)
from app.bank_exchange import export_bank, import_bank, import_pdq_list
from app.records.api_keys import ApiKey, Scope

router = APIRouter(prefix="/v1/banks", tags=["banks"])
ERRORS = {s: {"model": ErrorOut} for s in (401, 403, 404, 409, 413, 422, 429, 503)}
BankName = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_\-]{0,63}$")]
Offset = Annotated[int, Query(ge=0, le=10**9)]
Limit = Annotated[int, Query(ge=1, le=1000)]
MAX_FILE_BYTES = 256 * 1024 * 1024


@router.get("", response_model=list[BankOut], responses=ERRORS)
def list_banks(key: ApiKey = Depends(require(Scope.CHECK)), ctx: ApiContext = Depends(context)) -> list:
    return ctx.banks.list()


@router.post("", response_model=BankOut, status_code=201, responses=ERRORS)
def create_bank(body: BankIn, key: ApiKey = Depends(require(Scope.ADMIN)), ctx: ApiContext = Depends(context)):
    settings = body.model_dump(exclude={"name", "kind", "action"})
    return ctx.banks.create(body.name, body.kind, body.action, actor=key.actor, **settings)


@router.get("/{name}", response_model=BankOut, responses=ERRORS)
def get_bank(name: BankName, key: ApiKey = Depends(require(Scope.CHECK)), ctx: ApiContext = Depends(context)):
    return ctx.banks.get(name)


@router.patch("/{name}", response_model=BankOut, responses=ERRORS)
def update_bank(name: BankName, body: BankPatch, key: ApiKey = Depends(require(Scope.ADMIN)),
                ctx: ApiContext = Depends(context)):
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        raise ApiError(422, "body: give at least one setting to change", "body")
    return ctx.banks.update(name, actor=key.actor, **changes)


@router.delete("/{name}", status_code=204, responses=ERRORS)
def delete_bank(name: BankName, key: ApiKey = Depends(require(Scope.ADMIN)), ctx: ApiContext = Depends(context)):
    ctx.banks.delete(name, actor=key.actor)


@router.get("/{name}/entries", response_model=list[BankEntryOut], responses=ERRORS)
def list_entries(name: BankName, offset: Offset = 0, limit: Limit = 50, key: ApiKey = Depends(require(Scope.CHECK)),
                 ctx: ApiContext = Depends(context)) -> list:
    return ctx.banks.entries(name, offset, limit)


@router.post("/{name}/entries", response_model=EntryAddedOut, status_code=201, responses=ERRORS)
def add_entry(name: BankName, body: EntryIn, key: ApiKey = Depends(require(Scope.ADMIN)),
              ctx: ApiContext = Depends(context)):
    """Add a stored note to the bank; its look-back over the whole library runs (or is queued)."""
    return ctx.banks.add_note(name, body.note_id, actor=key.actor, details=body.details)


@router.delete("/{name}/entries/{entry_id}", response_model=BankEntryOut, responses=ERRORS)
def remove_entry(name: BankName, entry_id: Annotated[int, Path(ge=1, le=2**62)],
                 key: ApiKey = Depends(require(Scope.ADMIN)), ctx: ApiContext = Depends(context)):
    return ctx.banks.remove_entry(name, entry_id, actor=key.actor)


@router.post("/{name}/signals", response_model=ImportOut, responses=ERRORS)
def import_signals(name: BankName, file: Annotated[UploadFile, File(description="A PDQ hash list: ThreatExchange "
                                                                                 "file, PDQ CSV, HMA or TE JSON")],
                   key: ApiKey = Depends(require(Scope.ADMIN)), ctx: ApiContext = Depends(context)):
    return import_pdq_list(ctx.banks, name, _text(file), actor=key.actor)


@router.get("/{name}/export", responses=ERRORS)
def export(name: BankName, key: ApiKey = Depends(require(Scope.ADMIN)),
           ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    """The bank as a UniNote bank file (app/bank_exchange.py): vectors with their model version, PDQ hashes."""
    return export_bank(ctx.banks, name)


@router.post("/import", response_model=ImportOut, responses=ERRORS)
def import_file(file: Annotated[UploadFile, File(description="A UniNote bank file (GET /v1/banks/{name}/export)")],
                name: Annotated[str | None, Query(pattern=r"^[a-z0-9][a-z0-9_\-]{0,63}$")] = None,
                key: ApiKey = Depends(require(Scope.ADMIN)), ctx: ApiContext = Depends(context)):
    """Import a bank file into bank `name` (default: the file's). 409 when its vectors are of another model
    version than this library's (the message names the version it needs)."""
    return import_bank(ctx.banks, parse_json(_text(file), "file"), actor=key.actor, name=name)


@router.get("/{name}/deliveries", response_model=list[DeliveryOut], responses=ERRORS)
def deliveries(name: BankName, offset: Offset = 0, limit: Limit = 50, key: ApiKey = Depends(require(Scope.ADMIN)),
               ctx: ApiContext = Depends(context)) -> list:
    return ctx.banks.deliveries(name, offset, limit)


def _text(upload: UploadFile) -> str:
    data = upload.file.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ApiError(413, f"file: over {MAX_FILE_BYTES} bytes", "file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(422, "file: not UTF-8 text", "file") from None
