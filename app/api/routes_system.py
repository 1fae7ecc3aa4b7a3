"""GET /healthz (no key: load balancers and container health checks) and GET /metrics (Prometheus text)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.api.deps import ApiContext, context, require
from app.api.schemas import ErrorOut, HealthOut
from app.records.api_keys import ApiKey, Scope

router = APIRouter(tags=["system"])


@router.get("/healthz", response_model=HealthOut)
def healthz(ctx: ApiContext = Depends(context)) -> dict:
    return {"status": "ok", "model_version": ctx.client.library.encoder.model_version}


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}},
                                                             401: {"model": ErrorOut}, 403: {"model": ErrorOut}})
def metrics(key: ApiKey = Depends(require(Scope.ADMIN)), ctx: ApiContext = Depends(context)) -> Response:
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)
