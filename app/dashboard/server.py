"""Entry points the CLI wires: `uninote dashboard` (serve_dashboard) and `uninote user add` (add_user)."""

from __future__ import annotations

import ipaddress
import logging
import os

from app import moderation
from app.records.db import make_engine, migrate, session_factory
from app.records.users import Role, User
from app.secret_key import check_strong
from app.settings import Settings

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """Whether binding `host` serves this machine only (127.0.0.0/8, ::1, "localhost")."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def check_bind(host: str, settings: Settings) -> None:
    """Raises app.secret_key.WeakSecretKeyError when a configured SECRET_KEY is weak (or a public default)
    and `host` is not loopback: anyone who can reach the port could forge sessions. An unset SECRET_KEY
    means the installation's random key (HOME/secret_key), which is strong."""
    if settings.secret_key is not None and not is_loopback(host):
        check_strong(settings.secret_key, f"serving on {host} (not loopback)")


def serve_dashboard(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Serve the dashboard (blocking) on host:port (default DASHBOARD_HOST:DASHBOARD_PORT) over the library
    the settings describe. Raises app.secret_key.WeakSecretKeyError (see check_bind) or SecretKeyFileError
    before anything is opened, app.store.StoreLockedError when another process holds the embedded Qdrant
    folder (run a Qdrant server and set QDRANT_URL to share it)."""
    host, port = host or settings.dashboard_host, port or settings.dashboard_port
    check_bind(host, settings)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home, before gradio is imported
    import uvicorn

    from app.client import UniNoteClient
    from app.dashboard.app import build_app
    from app.dashboard.auth import session_secret
    from app.records import users

    session_secret(settings)  # HOME/secret_key refused before the encoder loads
    client = UniNoteClient.open(settings)
    try:
        with client.library.sessions() as s:
            if users.count_users(s, Role.ADMIN, active_only=True) == 0:
                log.warning("no admin account yet: create one with `uninote user add --role admin`")
        uvicorn.run(build_app(client), host=host, port=port, log_level="info")
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
