"""Which failures a task retries (a service that may come back) and which it records and moves past.

Transient (retried with exponential backoff, Celery `retry_backoff` style, full jitter):
- the vector store unreachable: qdrant-client `ResponseHandlingException` (connection refused, timeout),
  `UnexpectedResponse` with a 5xx/429 status, and the local folder held by another process
  (`StoreLockedError`: the other process may exit);
- the encoder server unreachable (vLLM over HTTP): any `httpx.TransportError`, HTTP 5xx/429;
- the records database unreachable: `DatabaseUnreachableError`, SQLAlchemy `OperationalError` /
  `InterfaceError` (connection lost, SQLite busy);
- plain `ConnectionError` / `TimeoutError` from any client.
Everything else is permanent: it is recorded (on the note's registry row, or on the backfill row) with
its reason and the task does not retry. Bad input (`InputError`: a corrupt image, an empty note) never
reaches here: Library.index records it per note and the rest of the batch goes on.
"""

from __future__ import annotations

from celery.utils.time import get_exponential_backoff_interval

RETRY_BACKOFF_S = 2  # first retry after up to 2 s, then 4, 8, ... (full jitter)
RETRY_BACKOFF_MAX_S = 300  # never wait more than 5 minutes between tries
MAX_RETRIES = 8  # ~10 minutes of tries in all before the failure counts as permanent


def is_transient(exc: BaseException) -> bool:
    """True if `exc` (or an exception it was raised from) says a service is unreachable right now."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if _transient_here(exc):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


def _transient_here(exc: BaseException) -> bool:
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    from app.records.errors import DatabaseUnreachableError
    from app.store import StoreLockedError

    if isinstance(exc, (DatabaseUnreachableError, StoreLockedError)):
        return True
    from sqlalchemy.exc import InterfaceError, OperationalError

    if isinstance(exc, (OperationalError, InterfaceError)):
        return True
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    if isinstance(exc, ResponseHandlingException):
        return True
    if isinstance(exc, UnexpectedResponse):
        return _retryable_status(exc.status_code)
    import httpx

    if isinstance(exc, httpx.TransportError):
        return True
    if isinstance(exc, httpx.HTTPStatusError):
        return _retryable_status(exc.response.status_code)
    return False


def _retryable_status(status: int | None) -> bool:
    return status is None or status == 429 or status >= 500


def backoff_s(retries: int) -> int:
    """Seconds to wait before try `retries + 1` (retries = tries so far - 1): full-jitter exponential,
    RETRY_BACKOFF_S * 2**retries capped at RETRY_BACKOFF_MAX_S (celery.utils.time)."""
    return get_exponential_backoff_interval(RETRY_BACKOFF_S, retries, RETRY_BACKOFF_MAX_S, full_jitter=True)


def describe(exc: BaseException) -> str:
    """'TypeName: message' on one line, for registry rows and backfill rows."""
    from celery.exceptions import SoftTimeLimitExceeded

    if isinstance(exc, SoftTimeLimitExceeded):
        return "SoftTimeLimitExceeded: the batch ran over BATCH_TIME_LIMIT_S (use a smaller --batch-size)"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
