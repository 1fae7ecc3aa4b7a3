"""Unreachable services as one exception type with one line to show: which service, its URL (secrets
masked), and what to run.

`ServiceUnavailableError` is raised where UniNote opens or calls a service it does not own (the broker in
workers/backfill.py) and is what `service_failure(exc, settings)` turns any other connection failure into,
from the exception and its causes alone, without knowing the client library that raised it: the records
database (app.records.DatabaseUnreachableError, SQLAlchemy's OperationalError), the broker (kombu's
OperationalError, redis-py's ConnectionError), and anything spoken over HTTP (Qdrant server, vLLM encoder:
an httpx.TransportError carries its request's URL, which names the service by the settings' URLs).
The CLI prints it and exits 1 (app/cli.py; `--debug` shows the traceback instead).
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from app.settings import Settings

HINT = "run `uninote healthcheck` to check every service"


class ServiceUnavailableError(ConnectionError):
    """A service cannot be reached. `service` names it (database, broker, Qdrant, encoder), `url` is its
    address with any password masked, `reason` the client's one-line reason. A ConnectionError, so the
    workers retry it as transient (workers/failures.py)."""

    def __init__(self, service: str, url: str | None, reason: str):
        self.service, self.url, self.reason = service, url, reason
        where = f" at {url}" if url else ""
        super().__init__(f"{service}{where} is unreachable: {reason}; {HINT}")


def mask_url(url: str | None) -> str | None:
    """The URL with its password (and a Redis-style `:password@`) replaced by ***."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        user = parts.username or ""
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:  # not a parseable URL: keep the scheme and host part only
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.rpartition('@')[2]}" if "@" in rest else url


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    while exc is not None and all(exc is not seen for seen in out):
        out.append(exc)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return out


def _http_service(url: str, settings: Settings) -> str:
    """Which configured service an HTTP URL belongs to (by scheme, host and port)."""
    def origin(u: str | None) -> tuple | None:
        if not u:
            return None
        p = urlsplit(u)
        return p.scheme, p.hostname, p.port or {"http": 80, "https": 443}.get(p.scheme)

    target = origin(url)
    for name, configured in (("Qdrant", settings.qdrant_url), ("encoder", settings.encoder_url)):
        if target is not None and target == origin(configured):
            return name
    return "service"


SQLITE_UNAVAILABLE = ("unable to open database", "database is locked", "disk i/o error", "readonly database")


def _lost_database(orig: BaseException | None) -> bool:
    """A driver error that says the database is gone (PostgreSQL connection errors; SQLite's file errors),
    not a bad statement."""
    if orig is None:
        return False
    if type(orig).__module__.startswith("psycopg"):
        return True
    return any(text in str(orig).lower() for text in SQLITE_UNAVAILABLE)


def service_failure(exc: BaseException, settings: Settings) -> ServiceUnavailableError | None:
    """The ServiceUnavailableError that `exc` (or an exception it was raised from) amounts to, or None when
    it is not a connection failure (a bug, bad input: let it show)."""
    chain = _chain(exc)
    for e in chain:
        if isinstance(e, ServiceUnavailableError):
            return e
    from app.records.errors import DatabaseUnreachableError

    for e in chain:
        if isinstance(e, DatabaseUnreachableError):
            return ServiceUnavailableError("database", e.url, e.reason)
    import httpx

    for e in chain:
        if isinstance(e, httpx.TransportError):
            try:
                url = str(e.request.url)
            except RuntimeError:  # an httpx error raised without a request
                continue
            origin = urlsplit(url)._replace(path="", query="", fragment="").geturl()
            return ServiceUnavailableError(_http_service(url, settings), mask_url(origin), _first_line(e))
    from kombu.exceptions import OperationalError as KombuOperationalError

    for e in chain:
        if isinstance(e, KombuOperationalError) or type(e).__module__.split(".")[0] in ("redis", "amqp"):
            return ServiceUnavailableError("broker", mask_url(settings.celery_broker_url), _first_line(e))
    from sqlalchemy.exc import InterfaceError, OperationalError

    for e in chain:
        if isinstance(e, (OperationalError, InterfaceError)) and _lost_database(e.orig):
            from app.records.db import safe_url

            return ServiceUnavailableError("database", safe_url(settings.resolved_database_url), _first_line(e.orig))
    for e in chain:
        if isinstance(e, (ConnectionError, TimeoutError)):
            service = "encoder" if type(e).__module__.startswith("encoder.") else "service"
            url = settings.encoder_url if service == "encoder" else None
            return ServiceUnavailableError(service, mask_url(url), _first_line(e))
    return None
