"""The webhook delivery task: a thin Celery wrapper over app.webhooks.deliver, on its own `webhooks` queue.

It needs only the records database (no encoder, no vector store), so a webhook worker can run beside an
API server that holds the embedded Qdrant folder (`uninote worker --queues webhooks`). Transient failures
retry through Celery's autoretry_for with exponential backoff and full jitter (retry_backoff,
retry_backoff_max, retry_jitter); the delivery log counts every attempt.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.orm import Session, sessionmaker

from app.records.db import make_engine, migrate, session_factory
from app.settings import Settings, get_settings
from app.webhooks import Outcome, deliver
from workers.celery_app import app, is_eager

WEBHOOK_BACKOFF_MAX_S = 600

_sessions: dict[str, sessionmaker[Session]] = {}
_sessions_lock = threading.Lock()
_eager_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="uninote-webhook")


class WebhookRetry(Exception):
    """A transient delivery failure (5xx, 408, 429, connection error): Celery retries the task."""


def _settings() -> Settings:
    return getattr(app.conf, "uninote_settings", None) or get_settings()


def delivery_sessions(settings: Settings) -> sessionmaker[Session]:
    """Sessions on the records database of these settings (migrated once per process)."""
    url = settings.resolved_database_url
    with _sessions_lock:
        if url not in _sessions:
            migrate(url)
            _sessions[url] = session_factory(make_engine(url))
        return _sessions[url]


@app.task(bind=True, name="uninote.deliver_webhook", acks_late=True, autoretry_for=(WebhookRetry,),
          retry_backoff=True, retry_backoff_max=WEBHOOK_BACKOFF_MAX_S, retry_jitter=True, max_retries=None)
def deliver_webhook_task(self, delivery_id: int) -> str:
    """One attempt at webhook delivery `delivery_id`; retried until WEBHOOK_MAX_RETRIES retries are spent.
    Returns the outcome ("delivered" or "failed")."""
    settings = _settings()
    final = self.request.retries >= settings.webhook_max_retries
    outcome = deliver(delivery_sessions(settings), delivery_id, timeout_s=settings.webhook_timeout_s, final=final,
                      allow_private=settings.webhook_allow_private_addresses)
    if outcome == Outcome.RETRY:
        raise WebhookRetry(f"delivery {delivery_id}: attempt {self.request.retries + 1} failed, retrying")
    return outcome.value


def submit_delivery(delivery_id: int) -> None:
    """Queue a delivery (to the `webhooks` queue; in-process mode: on a background thread, so a slow
    receiver never holds up the check that triggered it)."""
    if is_eager(app):
        _eager_pool.submit(deliver_webhook_task.apply, (delivery_id,))
    else:
        deliver_webhook_task.apply_async((delivery_id,))
