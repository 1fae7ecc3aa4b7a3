"""The UniNote Celery app, configured from the project settings (app/settings.py).

- Broker: CELERY_BROKER_URL (Redis in production, `redis://host:6379/0`; RabbitMQ `amqp://` works too).
  Unset = the embedded default: no broker, every task runs in the calling process (`task_always_eager`).
- Result backend: CELERY_RESULT_BACKEND, optional (progress lives in the records database, not in results).
- Long tasks, crash-safe (Celery docs, "Tasks" and "Optimizing"): JSON only; `acks_late` (a message is
  acknowledged after its task ran, so a task whose worker dies is delivered again) with
  `task_reject_on_worker_lost` (a killed pool process puts its message back at once); prefetch multiplier 1
  (a worker reserves one message per process, so long batches are not stuck behind a busy process).
  Every task is idempotent (deterministic point ids, conditional cursor commits), so a second delivery is safe.
- Queues: `index` (index/delete notes), `backfill` (backfills, re-index), `audit` (look-back).
- Time limits and redelivery: a batch (backfill, re-index) may run BATCH_TIME_LIMIT_S (Celery's soft time
  limit; the hard one HARD_LIMIT_MARGIN_S later), and the Redis transport's visibility timeout, after which
  a message a dead worker took is delivered again, is derived from that limit (`visibility_timeout_s`)
  instead of kombu's default hour: long enough for a reserved message to wait for a busy process and run,
  and for a retry's countdown (workers/failures.py), never so short that a live batch is delivered twice.

Start a worker with `uninote worker` (workers/worker.py) or `celery -A workers.celery_app worker -Q index,backfill,audit`.
With the embedded local-mode Qdrant only one process may open the store: run one worker with concurrency 1,
or a Qdrant server (QDRANT_URL) for more; the worker refuses to start otherwise (see `preflight`).
"""

from __future__ import annotations

import logging
import threading

from celery import Celery, signals
from kombu import Queue

from app.settings import Settings, get_settings

log = logging.getLogger(__name__)

INDEX_QUEUE = "index"
BACKFILL_QUEUE = "backfill"
AUDIT_QUEUE = "audit"
WEBHOOK_QUEUE = "webhooks"
QUEUES = (INDEX_QUEUE, BACKFILL_QUEUE, AUDIT_QUEUE, WEBHOOK_QUEUE)
LIBRARY_FREE_QUEUES = {WEBHOOK_QUEUE}  # their tasks need only the records database (no store, no encoder)
EAGER_BROKER = "memory://"  # placeholder broker of the in-process mode (never connected to)
HARD_LIMIT_MARGIN_S = 30  # the hard time limit kills a batch this long after its soft limit
BATCH_TASKS = ("uninote.backfill", "uninote.reindex_library")


def batch_time_limits(settings: Settings) -> dict[str, float]:
    """apply_async options of one batch task: {"soft_time_limit", "time_limit"} in seconds."""
    return {"soft_time_limit": settings.batch_time_limit_s,
            "time_limit": settings.batch_time_limit_s + HARD_LIMIT_MARGIN_S}


def visibility_timeout_s(settings: Settings) -> float:
    """Seconds before Redis hands a taken, unacknowledged message to another worker: a reserved message may
    wait one batch for its process (prefetch 1), then run one batch, or wait out a retry's countdown."""
    from workers.failures import RETRY_BACKOFF_MAX_S

    return 2 * batch_time_limits(settings)["time_limit"] + RETRY_BACKOFF_MAX_S

TASK_ROUTES = {
    "uninote.index_notes": {"queue": INDEX_QUEUE},
    "uninote.delete_note": {"queue": INDEX_QUEUE},
    "uninote.ping": {"queue": INDEX_QUEUE},
    "uninote.backfill": {"queue": BACKFILL_QUEUE},
    "uninote.reindex_library": {"queue": BACKFILL_QUEUE},
    "uninote.lookback": {"queue": AUDIT_QUEUE},
    "uninote.deliver_webhook": {"queue": WEBHOOK_QUEUE},
}


def celery_config(settings: Settings) -> dict:
    """The Celery configuration (new-style lower-case keys) for these settings."""
    eager = not settings.celery_broker_url
    return dict(
        broker_url=settings.celery_broker_url or EAGER_BROKER,
        result_backend=settings.celery_result_backend,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_queues=[Queue(name, routing_key=name) for name in QUEUES],
        task_default_queue=INDEX_QUEUE,
        task_routes=TASK_ROUTES,
        task_annotations={name: batch_time_limits(settings) for name in BATCH_TASKS},
        broker_transport_options={"visibility_timeout": visibility_timeout_s(settings)},
        task_always_eager=eager,
        task_eager_propagates=False,  # in-process mode: retries run (a propagated Retry would end them); the
        # failure is kept in the EagerResult and raised by .get() (workers/submit.py calls it)
        task_store_eager_result=False,
        broker_connection_retry_on_startup=True,
        worker_send_task_events=False,
        result_expires=24 * 3600,
        enable_utc=True,
    )


def make_celery(settings: Settings) -> Celery:
    """A Celery app for these settings, with the UniNote tasks registered (workers/tasks.py)."""
    celery = Celery("uninote", include=["workers.tasks", "workers.webhook_tasks"])
    configure(celery, settings)
    return celery


def configure(celery: Celery, settings: Settings) -> None:
    """(Re)apply `settings` to an app: tests and the CLI switch between in-process and broker modes."""
    celery.conf.update(celery_config(settings))
    celery.conf.uninote_settings = settings
    # forget what was built from the previous broker/backend URLs (Celery caches both on first use)
    celery._pool = None  # (not closed: kombu's shared producer pools may still hand out its connections)
    celery.__dict__.pop("amqp", None)
    celery._backend_cache = None
    celery._local = threading.local()


def is_eager(celery: Celery | None = None) -> bool:
    """True when tasks run in the calling process (no broker configured)."""
    return bool((celery or app).conf.task_always_eager)


app = make_celery(get_settings())


# ---- worker lifecycle ----------------------------------------------------------------------------------
def preflight(settings: Settings, concurrency: int, pool: str) -> None:
    """Refuse configurations that cannot work, with a message that says what to do.

    Embedded local-mode Qdrant (no QDRANT_URL): the storage folder can be opened by one process only, so a
    worker needs concurrency 1 (or the solo pool), and no other process (a second worker,
    the CLI, the dashboard) may hold the folder. Raises app.store.StoreLockedError or ValueError.
    """
    if settings.qdrant_url:
        return
    if pool != "solo" and concurrency > 1:
        raise ValueError(
            f"--concurrency {concurrency} needs a Qdrant server: with the embedded local-mode store "
            f"({settings.resolved_qdrant_path}) only one process may open the folder. Run one worker with "
            f"--concurrency 1, or start Qdrant and set QDRANT_URL to share the store between processes."
        )
    from app.store import open_store

    open_store(settings).close()  # raises StoreLockedError naming the folder and the fix


def needs_library(celery: Celery | None = None) -> bool:
    """False when the worker consumes only LIBRARY_FREE_QUEUES (-Q webhooks): it opens no Library, so it can
    run beside a process that holds the embedded Qdrant folder."""
    consumed = set((celery or app).amqp.queues.consume_from or QUEUES)
    return bool(consumed - LIBRARY_FREE_QUEUES)


def _settings_of(sender) -> Settings:
    celery = getattr(sender, "app", None) or app
    return getattr(celery.conf, "uninote_settings", None) or get_settings()


@signals.worker_init.connect
def _check_worker(sender=None, **_):
    """In the worker's main process, before the pool starts: refuse a store that cannot be shared."""
    from celery.concurrency import get_implementation

    settings = _settings_of(sender)
    pool_cls = get_implementation(getattr(sender, "pool_cls", None) or "prefork")
    pool_name = pool_cls.__module__.rsplit(".", 1)[-1]  # prefork, solo, thread, eventlet, gevent
    concurrency = getattr(sender, "concurrency", 1)
    concurrency = concurrency if isinstance(concurrency, int) else 2  # "auto": more than one
    if not needs_library(getattr(sender, "app", None)):
        return
    try:
        preflight(settings, concurrency, pool_name)
    except Exception as e:  # signal receivers' exceptions are only logged by Celery: stop the worker here
        log.critical("uninote worker cannot start: %s", e)
        raise SystemExit(f"uninote worker cannot start: {e}") from e


@signals.worker_process_init.connect
def _open_in_child(**_):
    """A prefork child: forget anything inherited and open the Library now, so the store's folder is held by
    the process that writes to it and the first task does not pay the encoder's load time."""
    from workers import runtime

    runtime.use_library(None)
    if not needs_library():
        return
    try:
        library = runtime.get_library(_settings_of(None))
        log.warning("uninote worker process ready: encoder %s", library.encoder.model_version)
    except Exception:  # the first task retries and reports it (transient) or records it
        log.exception("could not open the library in the worker process")


@signals.worker_process_shutdown.connect
@signals.worker_shutdown.connect
def _close_library(**_):
    from workers import runtime

    runtime.close_library()
