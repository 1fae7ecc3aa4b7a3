"""GET /v1/audit-log: one page of the append-only audit log, newest first (admins)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from app.api.deps import ApiContext, context, require
from app.api.schemas import AuditEntryOut, ErrorOut
from app.records.api_keys import ApiKey, Scope
from app.records.audit_log import Action

router = APIRouter(prefix="/v1", tags=["audit log"])
ERRORS = {s: {"model": ErrorOut} for s in (401, 403, 422, 429, 503)}


@router.get("/audit-log", response_model=list[AuditEntryOut], responses=ERRORS)
def audit_log(action: Action | None = None, actor: Annotated[str | None, Query(max_length=200)] = None,
              offset: Annotated[int, Query(ge=0, le=10**9)] = 0, limit: Annotated[int, Query(ge=1, le=1000)] = 50,
              key: ApiKey = Depends(require(Scope.ADMIN)), ctx: ApiContext = Depends(context)) -> list:
    return ctx.client.audit_log(action=action, actor=actor, offset=offset, limit=limit)
