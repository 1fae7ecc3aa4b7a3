"""Engines, sessions and schema migration of the records database (SQLAlchemy 2 + Alembic).

Backends: SQLite (the embedded default, `sqlite:///HOME/uninote.db`) and PostgreSQL through psycopg 3
(`postgresql+psycopg://`; `postgresql://` and `postgres://` are accepted and mean the same).
The schema is owned by Alembic: `migrate(url)` upgrades to head with the migrations shipped inside
the `app` package (app/alembic.ini, app/migrations).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, ProgrammingError
from sqlalchemy.exc import InterfaceError as SAInterfaceError
from sqlalchemy.orm import Session, sessionmaker

from app.records.errors import DatabaseUnreachableError, MigrationPermissionError

APP_DIR = Path(__file__).resolve().parents[1]  # the `app` package: alembic.ini and migrations/ ship here
SQLITE_BUSY_TIMEOUT_MS = 10_000  # how long a writer waits for SQLite's write lock
POSTGRES_CONNECT_TIMEOUT_S = 10  # libpq connect_timeout unless the URL sets one


def normalize_url(url: str | URL) -> URL:
    """Parse a database URL; `postgresql://`/`postgres://` become `postgresql+psycopg://` (psycopg 3).

    Raises ValueError naming the URL (password masked) when it cannot be parsed or is not SQLite or
    PostgreSQL.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as e:
        raise ValueError(f"not a database URL: {_mask_unparsed(str(url))!r} ({e})") from None
    backend = parsed.get_backend_name()
    if backend == "postgres":  # Heroku-style alias
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported database {safe_url(parsed)}: use sqlite:/// or postgresql://")
    return parsed


def safe_url(url: str | URL) -> str:
    """The URL as text with its password replaced by ***, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return _mask_unparsed(str(url))


def _mask_unparsed(url: str) -> str:
    """Best-effort password masking of a string that is not a valid URL."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not (sep and at and ":" in creds):
        return url
    return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"


def make_engine(url: str | URL, *, ping: bool = True, echo: bool = False) -> Engine:
    """An Engine for a SQLite or PostgreSQL URL.

    SQLite: creates the database's parent folder; every connection gets foreign keys on, WAL journal,
    synchronous=NORMAL and a busy timeout of SQLITE_BUSY_TIMEOUT_MS. PostgreSQL: psycopg 3,
    pool_pre_ping, connect_timeout POSTGRES_CONNECT_TIMEOUT_S unless the URL sets one.
    ping: open one connection now, so an unreachable database fails here and not at first use.

    Raises ValueError for a malformed/unsupported URL, DatabaseUnreachableError (URL shown without
    its password) when the database cannot be reached or opened.
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = _sqlite_engine(parsed, echo)
    else:
        connect_args = {} if "connect_timeout" in parsed.query else {"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S}
        engine = create_engine(parsed, pool_pre_ping=True, connect_args=connect_args, echo=echo)
    if ping:
        check_connection(engine)
    return engine


def _sqlite_engine(url: URL, echo: bool) -> Engine:
    database = url.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
    if not in_memory and not database.startswith("file:"):
        try:
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DatabaseUnreachableError(safe_url(url), f"cannot create the folder of {database}: {e}") from e
    engine = create_engine(url, echo=echo)

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, connection_record):  # noqa: ARG001 (SQLAlchemy signature)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


def check_connection(engine: Engine) -> None:
    """Open one connection and run SELECT 1. Raises DatabaseUnreachableError naming the URL (no password)."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except (OperationalError, SAInterfaceError) as e:
        reason = (str(e.orig) if e.orig is not None else str(e)).strip()
        first_line = reason.splitlines()[0] if reason else type(e).__name__
        raise DatabaseUnreachableError(safe_url(engine.url), first_line) from e


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A sessionmaker bound to `engine`; objects stay readable after commit (expire_on_commit=False)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def transaction(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """`with transaction(sessions) as session:` one unit of work: commit on success, roll back on
    any exception (which is re-raised), close the session either way."""
    session = sessions()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config() -> Config:
    """The Alembic Config of the shipped migrations (app/alembic.ini, script_location app/migrations)."""
    cfg = Config(str(APP_DIR / "alembic.ini"))
    cfg.set_main_option("script_location", str(APP_DIR / "migrations"))
    return cfg


def migrate(target: str | URL | Engine, revision: str = "head") -> None:
    """Upgrade the database at `target` (URL or Engine) to `revision` (default: the latest).

    Idempotent: an up-to-date database is left as it is. On PostgreSQL the whole upgrade is one
    transaction; on SQLite DDL is not transactional (pysqlite), so a failing revision leaves the
    statements before it applied. Raises DatabaseUnreachableError (URL without
    password) when the database cannot be reached, MigrationPermissionError when the role may not change
    the schema (the application's role of a two-role PostgreSQL setup), ValueError for a bad URL.
    """
    engine = target if isinstance(target, Engine) else make_engine(target)
    if isinstance(target, Engine):
        check_connection(engine)
    cfg = alembic_config()
    try:
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)
    except ProgrammingError as e:
        if getattr(e.orig, "sqlstate", None) != "42501":  # insufficient_privilege: the application's role
            raise
        raise MigrationPermissionError(safe_url(engine.url), str(e.orig).strip().splitlines()[0]) from e
    finally:
        if not isinstance(target, Engine):
            engine.dispose()
