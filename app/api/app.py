"""The API's FastAPI app: routers, error handlers, the body-size limit, metrics and the per-call audit.

    from app.api.app import create_app
    app = create_app(UniNoteClient.open(settings))      # uvicorn.run(app, ...): see app/api/server.py

/openapi.json needs a key too (any scope); there is no Swagger UI page (it would load scripts from a CDN).
Every call made with an API key is written to the audit log (actor "api-key:<id>", action api_call,
target "METHOD /route/{template}", details: status, path), after it was answered; rate-limited calls
(429) are not, so a flood costs no writes.
"""

from __future__ import annotations

import logging
import time

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from app.api import errors, routes_audit, routes_banks, routes_check, routes_matches, routes_notes, routes_system
from app.api.deps import ApiContext, RateLimit, require_key
from app.api.limits import BodySizeLimit
from app.api.metrics import ApiMetrics
from app.banks import Banks, LookbackRunner, Notifier
from app.client import UniNoteClient
from app.records import audit_log, banks as bank_records
from app.records.api_keys import ApiKey
from app.records.audit_log import Action
from app.records.db import transaction

log = logging.getLogger(__name__)
API_VERSION = "1.0.0"


def create_app(client: UniNoteClient, *, lookback: LookbackRunner | None = None,
               notify: Notifier | None = None) -> FastAPI:
    """The API over one client (its settings give the limits). lookback / notify: how a new bank entry's
    look-back runs and how a webhook delivery is queued (app.banks.Banks; the server passes the Celery
    ones). Raises ValueError for a malformed API_RATE_LIMIT."""
    settings = client.settings
    banks = Banks(client, lookback=lookback, notify=notify, lock=getattr(client, "_lock", None))
    metrics = ApiMetrics(lambda: queue_depths(settings), lambda: _delivery_counts(client))
    ctx = ApiContext(client, banks, settings, metrics, RateLimit(settings.api_rate_limit, settings.api_rate_limit_storage))
    app = FastAPI(title="UniNote API", version=API_VERSION, openapi_url=None, docs_url=None, redoc_url=None,
                  description="Near-duplicate and infringing-note matching against a library and its banks "
                              "(UniNote, Zhao et al., KDD 2026). Every route but /healthz needs an API key.")
    app.state.ctx = ctx
    for module in (routes_check, routes_notes, routes_matches, routes_banks, routes_audit, routes_system):
        app.include_router(module.router)

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(key: ApiKey = Depends(require_key)) -> JSONResponse:
        """The OpenAPI schema (any valid key)."""
        return JSONResponse(app.openapi())
    errors.install(app, on_error=metrics.error)

    @app.middleware("http")
    async def audit_and_measure(request: Request, call_next):
        t0 = time.perf_counter()
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        metrics.requests.labels(request.method, route, str(response.status_code)).inc()
        metrics.latency.labels(route).observe(time.perf_counter() - t0)
        key = getattr(request.state, "api_key", None)
        if key is not None and response.status_code != 429:
            await run_in_threadpool(_audit, client, key.actor, f"{request.method} {route}",
                                    {"status": response.status_code, "path": request.url.path[:500]})
        return response

    app.add_middleware(BodySizeLimit, max_bytes=settings.api_max_body_bytes)
    return app


def _audit(client: UniNoteClient, actor: str, target: str, details: dict) -> None:
    try:
        with transaction(client.library.sessions) as s:
            audit_log.append(s, actor, Action.API_CALL, target, details)
    except Exception:  # the call was answered; a lost audit row is logged loudly, not turned into a 500
        log.exception("could not audit %s %s", actor, target)


def _delivery_counts(client: UniNoteClient) -> dict[str, int]:
    with client.library.sessions() as s:
        return bank_records.count_deliveries(s)


def queue_depths(settings) -> dict[str, int]:
    """Messages waiting in each UniNote Celery queue (0 for all in the in-process mode)."""
    from workers.celery_app import QUEUES

    if not settings.celery_broker_url:
        return {q: 0 for q in QUEUES}
    from kombu import Connection

    out = {}
    with Connection(settings.celery_broker_url, connect_timeout=3) as conn:
        channel = conn.default_channel
        for q in QUEUES:
            try:
                out[q] = channel.queue_declare(queue=q, passive=True).message_count
            except Exception:  # not declared yet: nothing waiting
                out[q] = 0
    return out
