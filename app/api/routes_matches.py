"""POST /v1/matches/{match_id}/decision: a moderator's decision on a saved match, and optionally the matched
note into a bank (whose look-back then runs over the library)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from app.api.deps import ApiContext, context, require
from app.api.schemas import DecisionIn, DecisionResultOut, ErrorOut
from app.records.api_keys import ApiKey, Scope

router = APIRouter(prefix="/v1/matches", tags=["decisions"])
ERRORS = {s: {"model": ErrorOut} for s in (401, 403, 404, 422, 429, 503)}


@router.post("/{match_id}/decision", response_model=DecisionResultOut, responses=ERRORS)
def decide(match_id: Annotated[int, Path(ge=1, le=2**62)], body: DecisionIn,
           key: ApiKey = Depends(require(Scope.DECIDE)), ctx: ApiContext = Depends(context)) -> dict:
    moderator = body.moderator or key.name
    if body.add_to_bank:
        ctx.banks.get(body.add_to_bank)  # 404 before anything is written
    decision = ctx.client.record_decision(match_id, body.decision, moderator=moderator, comment=body.comment)
    entry = None
    if body.add_to_bank:
        entry = ctx.banks.add_from_match(body.add_to_bank, match_id, actor=moderator)
    return {"decision": decision, "bank_entry": entry}
