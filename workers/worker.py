"""`uninote worker`: start a Celery worker process for the UniNote queues (blocking)."""

from __future__ import annotations

from app.settings import Settings
from workers.celery_app import LIBRARY_FREE_QUEUES, QUEUES, app, configure, is_eager, preflight


class NoBrokerError(RuntimeError):
    """CELERY_BROKER_URL is not set: tasks run in the calling process and there is no queue to serve."""


def start_worker(queues: list[str], concurrency: int, *, pool: str = "prefork", loglevel: str = "INFO",
                 settings: Settings | None = None) -> None:
    """Run a worker consuming `queues` (a subset of index, backfill, audit, webhooks) with `concurrency` processes
    until it is stopped (SIGTERM/SIGINT: warm shutdown, the running tasks finish).

    Raises NoBrokerError without CELERY_BROKER_URL, ValueError for an unknown queue or concurrency < 1, or
    for concurrency > 1 with the embedded local-mode store, app.store.StoreLockedError when another process
    holds the local store's folder (both say what to do instead).
    """
    if settings is not None:
        configure(app, settings)
    if is_eager(app):
        raise NoBrokerError("CELERY_BROKER_URL is not set: without a broker every task runs in the process that "
                            "queues it, so there is nothing for a worker to do. Set CELERY_BROKER_URL (e.g. "
                            "redis://127.0.0.1:6379/0) here and in the processes that queue work.")
    unknown = sorted(set(queues) - set(QUEUES))
    if unknown or not queues:
        raise ValueError(f"unknown queue(s) {unknown or queues}: choose among {list(QUEUES)}")
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    if set(queues) - LIBRARY_FREE_QUEUES:  # a webhooks-only worker opens no store
        preflight(app.conf.uninote_settings, concurrency, pool)
    app.worker_main(["worker", f"--queues={','.join(queues)}", f"--concurrency={concurrency}", f"--pool={pool}",
                     f"--loglevel={loglevel}", "--without-gossip", "--without-mingle"])
