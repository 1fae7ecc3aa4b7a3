"""Errors of the HTTP API as JSON `{"error": ..., "field": ...}` (never a traceback), one handler per kind.

| raised                                        | status | field                                    |
|-----------------------------------------------|--------|------------------------------------------|
| ApiError (auth, scopes, limits, uploads)      | given  | given                                    |
| request validation (FastAPI)                  | 422    | the parameter or body path               |
| InputError (an image that cannot be read)     | 422    | its field, e.g. images[1]                |
| ValueError ("field: message")                 | 422    | the prefix of the message, when it has one |
| RecordNotFoundError, NoteNotStoredError       | 404    | -                                        |
| BankExistsError, ModelVersionMismatchError    | 409    | name / model_version                     |
| PermissionDeniedError                         | 403    | -                                        |
| StoreLockedError, DatabaseUnreachableError    | 503    | -                                        |
| StoreOpenError, StoreWriteError               | 503    | -                                        |
| anything else                                 | 500    | - (logged with its traceback, not sent)  |
"""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.audit import ModelVersionMismatchError
from app.moderation import PermissionDeniedError
from app.records.banks import BankExistsError
from app.records.errors import DatabaseUnreachableError, RecordNotFoundError
from app.store import StoreLockedError, StoreOpenError, StoreWriteError
from app.stored_notes import NoteNotStoredError
from encoder.types import InputError

log = logging.getLogger(__name__)
_FIELD_PREFIX = re.compile(r"^([A-Za-z_][\w.\[\]]*): ")
MAX_MESSAGE = 2000


class ApiError(Exception):
    """An HTTP error with a message and, when one field is to blame, its name."""

    def __init__(self, status: int, error: str, field: str | None = None, headers: dict[str, str] | None = None):
        self.status, self.error, self.field, self.headers = status, error, field, headers
        super().__init__(error)


def error_response(status: int, error: str, field: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error[:MAX_MESSAGE], "field": field}, status_code=status, headers=headers)


def _field_of(message: str) -> str | None:
    m = _FIELD_PREFIX.match(message)
    return m.group(1) if m else None


def _validation_field(loc: tuple) -> str:
    parts = [str(x) for x in loc if x not in ("body", "query", "path", "header", "form")]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out or "request"


def install(app: FastAPI, on_error=None) -> None:
    """Register the handlers. on_error(kind): called for each error response (metrics)."""

    def respond(kind: str, status: int, error: str, field: str | None = None, headers=None) -> JSONResponse:
        if on_error is not None:
            on_error(kind, status)
        return error_response(status, error, field, headers)

    @app.exception_handler(ApiError)
    async def _api(request: Request, e: ApiError):
        return respond("api", e.status, e.error, e.field, e.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, e: RequestValidationError):
        errors = e.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        field = _validation_field(tuple(first.get("loc", ())))
        return respond("validation", 422, f"{field}: {first.get('msg', 'invalid')}", field)

    @app.exception_handler(InputError)
    async def _input(request: Request, e: InputError):
        return respond("input", 422, str(e), e.field)

    @app.exception_handler(RecordNotFoundError)
    async def _not_found(request: Request, e: RecordNotFoundError):
        return respond("not_found", 404, str(e))

    @app.exception_handler(NoteNotStoredError)
    async def _not_stored(request: Request, e: NoteNotStoredError):
        return respond("not_found", 404, str(e))

    @app.exception_handler(BankExistsError)
    async def _exists(request: Request, e: BankExistsError):
        return respond("conflict", 409, str(e), "name")

    @app.exception_handler(ModelVersionMismatchError)
    async def _version(request: Request, e: ModelVersionMismatchError):
        return respond("model_version", 409, str(e), "model_version")

    @app.exception_handler(PermissionDeniedError)
    async def _denied(request: Request, e: PermissionDeniedError):
        return respond("forbidden", 403, str(e))

    @app.exception_handler(ValueError)
    async def _value(request: Request, e: ValueError):
        return respond("value", 422, str(e), _field_of(str(e)))

    @app.exception_handler(StoreLockedError)
    @app.exception_handler(StoreOpenError)
    @app.exception_handler(StoreWriteError)
    @app.exception_handler(DatabaseUnreachableError)
    async def _unavailable(request: Request, e: Exception):
        log.error("service unavailable: %s", e)
        return respond("unavailable", 503, f"a backing service is unavailable: {e}", headers={"Retry-After": "5"})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException):
        return respond("http", e.status_code, str(e.detail), headers=getattr(e, "headers", None))

    @app.exception_handler(Exception)
    async def _internal(request: Request, e: Exception):
        log.exception("internal error on %s %s", request.method, request.url.path)
        return respond("internal", 500, "internal error (logged on the server)")
