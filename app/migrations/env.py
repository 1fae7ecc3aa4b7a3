"""Alembic environment of the records database: target metadata = every table of app.records
(app.records.schema.full_metadata(): Base.metadata with all table modules imported).

Connection, in order: a Connection passed in `config.attributes["connection"]` (app.records.db.migrate),
`-x url=...` on the command line, `sqlalchemy.url` in app/alembic.ini, the UniNote settings'
resolved DATABASE_URL. SQLite migrations run in batch mode (render_as_batch) since SQLite cannot ALTER
most things in place.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

from app.records.schema import full_metadata

config = context.config
target_metadata = full_metadata()


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    from_x = context.get_x_argument(as_dictionary=True).get("url")
    if from_x:
        return from_x
    from_ini = config.get_main_option("sqlalchemy.url")
    if from_ini:
        return from_ini
    from app.settings import get_settings

    return get_settings().resolved_database_url


def run_migrations_offline() -> None:
    """`alembic upgrade --sql`: emit SQL for the configured URL's dialect without connecting."""
    from app.records.db import normalize_url

    url = normalize_url(_url())
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=url.get_backend_name() == "sqlite",
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:  # app.records.db.migrate: the caller owns connection and logging
        _configure_and_run(connection)
        return
    if config.config_file_name is not None:
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    from app.records.db import make_engine

    engine = make_engine(_url())
    try:
        with engine.begin() as conn:
            _configure_and_run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
