"""Health checks for container roles: do the services a role depends on answer? (No encoder is loaded:
this runs every 30 s inside the container's HEALTHCHECK.)"""

from __future__ import annotations

from app.settings import Settings


def check_role(settings: Settings, role: str) -> list[str]:
    """Problems found for `role` (worker, dashboard, api, migrate); an empty list means healthy."""
    problems: list[str] = []
    try:
        from app.records.db import check_connection, make_engine

        check_connection(make_engine(settings.resolved_database_url))
    except Exception as e:  # noqa: BLE001 - any failure is reported, not raised
        problems.append(f"database: {e}")
    if role == "migrate":
        return problems
    if settings.qdrant_url:
        try:
            from qdrant_client import QdrantClient

            QdrantClient(url=settings.qdrant_url, api_key=settings.qdrant_api_key, timeout=5).get_collections()
        except Exception as e:  # noqa: BLE001
            problems.append(f"qdrant at {settings.qdrant_url}: {e}")
    if role == "worker" and settings.celery_broker_url:
        try:
            from kombu import Connection

            with Connection(settings.celery_broker_url, connect_timeout=5) as conn:
                conn.ensure_connection(max_retries=1)
        except Exception as e:  # noqa: BLE001
            problems.append(f"broker: {e}")
    return problems
