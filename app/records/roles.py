"""The two PostgreSQL roles of a deployment: the owner, who migrates, and the application, who may not
rewrite the audit log (docs/scaling.md, "Two database roles").

Alembic revision 0005 creates the group role `uninote_app` and its grants. `uninote migrate`, run with
MIGRATION_DATABASE_URL (the owner) and DATABASE_URL (the application), then calls `provision_app_login`:
the login role of DATABASE_URL is created when missing (with the URL's password) and made a member of
`uninote_app`. `audit_log_exposure` tells whether a role could still rewrite the log (owner, superuser, or
holding UPDATE/DELETE/TRUNCATE on it), for the warning `uninote migrate` prints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from app.settings import Settings

APP_ROLE = "uninote_app"  # created by Alembic revision 0005


def provision_app_login(owner: Engine, app_url: str) -> str | None:
    """Make DATABASE_URL's user a member of APP_ROLE, creating it (LOGIN, the URL's password) when missing.

    Returns the user's name, or None when there is nothing to do: not PostgreSQL, no user in the URL, the
    user is the owner itself, or APP_ROLE does not exist (the migrating role could not create it).
    Raises sqlalchemy.exc.ProgrammingError when the owner may not create roles or grant membership.
    """
    if owner.dialect.name != "postgresql":
        return None
    url = make_url(app_url)
    user = url.username
    with owner.begin() as conn:
        current = conn.scalar(text("SELECT current_user"))
        if not user or user == current:
            return None
        if not conn.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": APP_ROLE}):
            return None
        if not conn.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": user}):
            from psycopg import sql

            statement = sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(user))
            if url.password:
                statement = sql.SQL("{} PASSWORD {}").format(statement, sql.Literal(url.password))
            conn.exec_driver_sql(statement.as_string(conn.connection.driver_connection))
        conn.exec_driver_sql(f'GRANT {APP_ROLE} TO "{user.replace(chr(34), chr(34) * 2)}"')
    return user


def audit_log_exposure(engine: Engine) -> str | None:
    """Why the engine's role could rewrite the audit log (it owns the table, is a superuser, or holds UPDATE,
    DELETE or TRUNCATE on it), or None when it can only read and append. Always None on SQLite (a file:
    whoever can write the file can rewrite it; the hash chain is what tells)."""
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT current_user, r.rolsuper, pg_has_role(current_user, c.relowner, 'USAGE'), "
            "has_table_privilege('audit_log', 'UPDATE'), has_table_privilege('audit_log', 'DELETE'), "
            "has_table_privilege('audit_log', 'TRUNCATE') "
            "FROM pg_class c, pg_roles r WHERE c.oid = 'audit_log'::regclass AND r.rolname = current_user"
        )).one()
    user, superuser, owner, *rights = row
    if superuser:
        return f"role {user!r} is a superuser"
    if owner:
        return f"role {user!r} owns audit_log (it can disable its triggers)"
    held = [name for name, has in zip(("UPDATE", "DELETE", "TRUNCATE"), rights) if has]
    return f"role {user!r} holds {', '.join(held)} on audit_log" if held else None


def migrate_with_roles(settings: "Settings") -> list[str]:
    """`uninote migrate`: upgrade to head as MIGRATION_DATABASE_URL's role (else DATABASE_URL's); with both set,
    provision DATABASE_URL's login as the application role. Returns warnings to show: the application's
    role can still rewrite the audit log (single-role setup, or a superuser/owner as DATABASE_URL).
    Raises DatabaseUnreachableError, sqlalchemy.exc.ProgrammingError (the owner may not create roles)."""
    from app.records.db import make_engine, migrate

    owner = make_engine(settings.resolved_migration_url)
    try:
        migrate(owner)
        if settings.migration_database_url:
            provision_app_login(owner, settings.resolved_database_url)
    finally:
        owner.dispose()
    app = make_engine(settings.resolved_database_url)
    try:
        exposure = audit_log_exposure(app)
    finally:
        app.dispose()
    if exposure is None:
        return []
    return [f"DATABASE_URL's {exposure}: it could rewrite the audit log (`uninote audit verify` would tell); "
            "give the application its own role with MIGRATION_DATABASE_URL (docs/scaling.md, Two database roles)"]
