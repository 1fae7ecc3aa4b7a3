"""Shared pytest fixtures. One section per area; keep each section self-contained."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


# ----------------------------------------------------------------------------------------------------
# Databases (app/records): SQLite in a tmp folder and PostgreSQL on 127.0.0.1:5432 (user postgres,
# trust auth). Each test session creates one database `uninote_test_<random>` and drops it at the end;
# each test gets an empty `public` schema in it. With CI=true PostgreSQL must be reachable (the tests
# fail otherwise); without CI they skip, naming PostgreSQL. UNINOTE_TEST_POSTGRES_URL overrides the
# server (an admin URL of a database that exists, e.g. .../postgres).
# ----------------------------------------------------------------------------------------------------

POSTGRES_ADMIN_URL = os.environ.get(
    "UNINOTE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def in_ci() -> bool:
    """True when env CI=true: service-backed tests must run and fail loudly when a service is missing."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _need_service(name: str, reason: str) -> None:
    message = f"{name} not reachable: {reason}"
    if in_ci():
        pytest.fail(f"{message} (CI=true requires it)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """URL of a fresh database `uninote_test_<random>` on the test PostgreSQL, dropped after the session."""
    import psycopg
    from sqlalchemy.engine import make_url

    from app.records.db import safe_url

    admin = make_url(POSTGRES_ADMIN_URL).set(drivername="postgresql")
    dsn = admin.render_as_string(hide_password=False)
    try:
        conn = psycopg.connect(dsn, autocommit=True, connect_timeout=5)
    except psycopg.Error as e:
        _need_service("PostgreSQL", f"{safe_url(admin)}: {str(e).strip().splitlines()[0]}")
    name = f"uninote_test_{uuid.uuid4().hex[:12]}"
    with conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_database_url(postgres_server_url: str) -> str:
    """The session's PostgreSQL test database with an empty `public` schema (no tables, no migrations)."""
    import psycopg
    from sqlalchemy.engine import make_url

    dsn = make_url(postgres_server_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
        conn.execute("CREATE SCHEMA public")
    return postgres_server_url


@pytest.fixture
def sqlite_database_url(tmp_path: Path) -> str:
    """A SQLite file URL in a folder that does not exist yet (make_engine creates it)."""
    return f"sqlite:///{(tmp_path / 'records' / 'uninote.db').as_posix()}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def database_url(request: pytest.FixtureRequest) -> str:
    """An empty database, once per backend: tests that take it run on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_database_url")
    return request.getfixturevalue("postgres_database_url")


@pytest.fixture
def record_sessions(database_url: str):
    """A sessionmaker on a database migrated to head (both backends); the engine is disposed after."""
    from app.records.db import make_engine, migrate, session_factory

    migrate(database_url)
    engine = make_engine(database_url)
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()


# ----------------------------------------------------------------------------------------------------
# Redis (Celery broker of the real-worker tests) on 127.0.0.1:6379, db 15, emptied around each test.
# ----------------------------------------------------------------------------------------------------

TEST_REDIS_URL = os.environ.get("UNINOTE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def redis_url() -> Iterator[str]:
    """TEST_REDIS_URL, emptied before and after the test. Skips naming Redis when it is down (fails with CI=true)."""
    import redis

    client = redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as e:
        _need_service("Redis", f"{TEST_REDIS_URL}: {e}")
    client.flushdb()
    yield TEST_REDIS_URL
    client.flushdb()


# ----------------------------------------------------------------------------------------------------
# The HTTP API (tests/app/api, tests/security/test_api_*.py): one real `uninote serve` process for the
# session over the embedded default, a real Celery worker for its webhooks (Redis TEST_REDIS_URL), and the
# same notes in a second HOME for the in-process comparison client (tests/api_support.py).
# ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def api_server(tmp_path_factory):
    import redis

    import api_support as support
    from worker_process import start_worker, stop_worker

    from app.client import UniNoteClient
    from app.records import api_keys
    from app.records.db import transaction
    from app.settings import Settings

    client = redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as e:
        _need_service("Redis", f"{TEST_REDIS_URL}: {e}")
    client.flushdb()
    tmp = tmp_path_factory.mktemp("api")
    home, compare_home = tmp / "home", tmp / "compare"
    photos = tmp / "photos"
    support.write_photos(photos)
    keys, key_ids = {}, {}
    for h in (home, compare_home):
        with UniNoteClient.open(Settings(UNINOTE_HOME=h, ocr_enabled=False)) as c:
            result = c.index(support.library_notes(photos))
            assert not result.failed, result.failed
            if h == home:
                with transaction(c.library.sessions) as s:
                    for scope in (*support.SCOPE_KEYS, "all"):
                        k, token = api_keys.create_key(s, f"test-{scope}", ",".join(support.SCOPE_KEYS)
                                                       if scope == "all" else scope)
                        keys[scope], key_ids[scope] = token, k.key_id
    worker_settings = Settings(UNINOTE_HOME=home, ocr_enabled=False, celery_broker_url=TEST_REDIS_URL,
                               webhook_allow_private_addresses=True)  # the receiver listens on 127.0.0.1
    worker_log = tmp / "worker.log"
    worker = start_worker(worker_settings, worker_log, "api-webhooks", queues="webhooks")
    port = support.free_port()
    log = tmp / "server.log"
    proc = support.start_server(home, port, log, support.server_env(home, TEST_REDIS_URL))
    url = f"http://127.0.0.1:{port}"
    try:
        support.wait_until_up(url, proc, log)
        yield support.ApiServer(url, home, photos, log, keys, key_ids, compare_home, TEST_REDIS_URL)
    finally:
        support.stop(proc)
        stop_worker(worker)
        client.flushdb()


# --- CLI -----------------------------------------------------------------------------------------------

@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    """A fresh UNINOTE_HOME (tmp_path/home, OCR off) for CLI calls in this process; yields tmp_path."""
    from app.settings import get_settings

    monkeypatch.setenv("UNINOTE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OCR_ENABLED", "false")
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()
