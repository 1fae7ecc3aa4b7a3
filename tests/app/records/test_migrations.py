"""app/migrations: upgrade from empty on both backends, head matches the models (every table module of
app.records), downgrade works."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Integer, MetaData, inspect

from app.records.db import alembic_config, make_engine, migrate
from app.records.schema import full_metadata

TABLES = {"notes", "audit_reports", "audit_matches", "decisions"}


def _head() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _diff(engine, metadata: MetaData) -> list:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, metadata)


def test_migrate_from_empty_creates_the_schema_at_head(database_url: str):
    engine = make_engine(database_url)
    try:
        assert not TABLES & set(inspect(engine).get_table_names())
        migrate(database_url)
        migrate(database_url)  # idempotent
        assert TABLES <= set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == _head()
    finally:
        engine.dispose()


def test_head_matches_the_models(database_url: str):
    """alembic autogenerate finds nothing to do: the migrations and app.records.models agree."""
    migrate(database_url)
    engine = make_engine(database_url)
    try:
        metadata = full_metadata()
        assert _diff(engine, metadata) == []
        # the comparison is not vacuous: a model change shows up as a diff
        changed = MetaData(naming_convention=metadata.naming_convention)
        for table in metadata.tables.values():
            table.to_metadata(changed)
        changed.tables["notes"].append_column(Column("priority", Integer))
        assert [d[0] for d in _diff(engine, changed)] == ["add_column"]
    finally:
        engine.dispose()


def test_downgrade_to_base_and_upgrade_again(database_url: str):
    migrate(database_url)
    engine = make_engine(database_url)
    try:
        cfg = alembic_config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "base")
        assert not TABLES & set(inspect(engine).get_table_names())
        migrate(engine)
        assert TABLES <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_env_builds_its_own_engine_from_the_ini_url(sqlite_database_url: str):
    """The command-line path (`alembic -c app/alembic.ini upgrade head`), with the URL set in the config."""
    cfg = alembic_config()
    cfg.set_main_option("sqlalchemy.url", sqlite_database_url)
    command.upgrade(cfg, "head")
    engine = make_engine(sqlite_database_url)
    try:
        assert TABLES <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
