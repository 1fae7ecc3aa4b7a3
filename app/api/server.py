"""`uninote serve`: the API under uvicorn, over the library the settings describe.

The server process owns the library (with the embedded default, the only process that may open the
Qdrant folder). A new bank entry's look-back runs as the existing Celery look-back task when a broker
and a Qdrant server are configured (a worker can open the store), else here in the server. Webhook
deliveries go to the `webhooks` queue (a worker needs only the database: `uninote worker --queues
webhooks`), or run on a background thread without a broker.
"""

from __future__ import annotations

import logging

from app.settings import Settings

log = logging.getLogger(__name__)


def serve_api(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Serve the API (blocking) on host:port (default API_HOST:API_PORT). Raises app.store.StoreLockedError
    when another process holds the embedded Qdrant folder."""
    import uvicorn

    from app.api.app import create_app
    from app.client import UniNoteClient
    from workers.celery_app import app as celery_app, configure
    from workers.tasks import lookback_task
    from workers.webhook_tasks import submit_delivery

    configure(celery_app, settings)
    lookback = None
    if settings.celery_broker_url and settings.qdrant_url:
        def lookback(note_id: str) -> dict:
            return {"lookback_task_id": lookback_task.apply_async((note_id,)).id}

    client = UniNoteClient.open(settings)
    try:
        app = create_app(client, lookback=lookback, notify=submit_delivery)
        uvicorn.run(app, host=host or settings.api_host, port=port or settings.api_port, log_level="info",
                    timeout_graceful_shutdown=30)
    finally:
        client.close()
