"""Dependencies of the API routes: the context (client, banks, settings), the API key and its scope, the
per-key rate limit, and the records sessions.

Every route but /healthz depends on `require(scope)`: no or an unknown/revoked key -> 401, a key without
the scope -> 403, over the key's rate limit (API_RATE_LIMIT, moving window, `limits`) -> 429 with
Retry-After. The key is left on request.state for the audit middleware (app/api/app.py).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from app.api.errors import ApiError
from app.api.metrics import ApiMetrics
from app.banks import Banks
from app.client import UniNoteClient
from app.records import api_keys
from app.records.api_keys import ApiKey, Scope
from app.settings import Settings

bearer = HTTPBearer(auto_error=False, description="An API key from `uninote key add`: `Authorization: Bearer un_...`")


class RateLimit:
    """API_RATE_LIMIT per key (e.g. "600/minute"), counted in API_RATE_LIMIT_STORAGE (memory:// or redis://)."""

    def __init__(self, spec: str, storage: str):
        try:
            self.item = parse(spec)
        except ValueError:
            raise ValueError(f"API_RATE_LIMIT: not a rate limit: {spec!r} (e.g. '600/minute')") from None
        self.limiter = MovingWindowRateLimiter(storage_from_string(storage))

    def check(self, key_id: str) -> None:
        if not self.limiter.hit(self.item, key_id):
            reset = self.limiter.get_window_stats(self.item, key_id).reset_time
            retry = max(1, math.ceil(reset - time.time()))
            raise ApiError(429, f"rate limit of {self.item} for this key exceeded; retry in {retry} s",
                           headers={"Retry-After": str(retry)})


@dataclass
class ApiContext:
    """What every route needs; one per app (app.state.ctx)."""

    client: UniNoteClient
    banks: Banks
    settings: Settings
    metrics: ApiMetrics
    rate_limit: RateLimit

    def authenticate(self, token: str) -> ApiKey | None:
        """The key of a token, looked up on every request (one indexed query), so a revocation counts at once."""
        with self.client.library.sessions() as s:
            return api_keys.authenticate(s, token)


def context(request: Request) -> ApiContext:
    return request.app.state.ctx


def require(scope: Scope | None):
    """Dependency: the request's API key, which must hold `scope` (None: any scope; 401 / 403 / 429 otherwise)."""

    def dependency(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
                   ctx: ApiContext = Depends(context)) -> ApiKey:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise ApiError(401, "an API key is required: send 'Authorization: Bearer <key>' (uninote key add)",
                           "authorization", headers={"WWW-Authenticate": "Bearer"})
        key = ctx.authenticate(credentials.credentials)
        if key is None:
            raise ApiError(401, "unknown or revoked API key", "authorization", headers={"WWW-Authenticate": "Bearer"})
        request.state.api_key = key
        ctx.rate_limit.check(key.key_id)
        if scope is not None and not key.allows(scope):
            raise ApiError(403, f"this API key lacks the {scope.value!r} scope (it has "
                                f"{[s.value for s in key.scopes]})", "authorization")
        return key

    return dependency


require_key = require(None)
