"""Entry points the CLI wires: `uninote dashboard` (serve_dashboard) and `uninote user add` (add_user)."""

from __future__ import annotations

import logging
import os

from app import moderation
from app.records.db import make_engine, migrate, session_factory
from app.records.users import Role, User
from app.settings import Settings

log = logging.getLogger(__name__)


def serve_dashboard(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Serve the dashboard (blocking) on host:port (default DASHBOARD_HOST:DASHBOARD_PORT) over the library
    the settings describe. Raises app.store.StoreLockedError when another process holds the embedded
    Qdrant folder (run a Qdrant server and set QDRANT_URL to share it)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home, before gradio is imported
    import uvicorn

    from app.client import UniNoteClient
    from app.dashboard.app import build_app
    from app.records import users

    client = UniNoteClient.open(settings)
    try:
        with client.library.sessions() as s:
            if users.count_users(s, Role.ADMIN, active_only=True) == 0:
                log.warning("no admin account yet: create one with `uninote user add --role admin`")
        if settings.secret_key == "dev-secret-key":
            log.warning("SECRET_KEY is the development default: set a real one before exposing the dashboard")
        uvicorn.run(build_app(client), host=host or settings.dashboard_host, port=port or settings.dashboard_port,
                    log_level="info")
    finally:
        client.close()


def add_user(settings: Settings, username: str, password: str, role: Role | str = Role.MODERATOR) -> User:
    """Create a dashboard account from the command line (audit-logged with actor "cli"). Opens only the
    records database (runs pending migrations), so it works while the dashboard runs.
    Raises ValueError for a bad username/role or a password under 8 characters,
    app.records.users.UserExistsError when the name is taken."""
    url = settings.resolved_database_url
    migrate(url)
    engine = make_engine(url)
    try:
        return moderation.create_user(session_factory(engine), moderation.CLI_ACTOR, username, password, role)
    finally:
        engine.dispose()
