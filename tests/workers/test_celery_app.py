"""Celery configuration from the settings, and the worker's refusal of a store it cannot share."""

from __future__ import annotations

import pytest

from app.settings import Settings
from app.store import StoreLockedError, open_store
import workers.tasks  # noqa: F401 (registers the tasks)
from workers.celery_app import QUEUES, app, celery_config, configure, is_eager, preflight
from workers.worker import NoBrokerError, start_worker


def test_the_broker_url_decides_between_in_process_and_workers(tmp_path):
    embedded = celery_config(Settings(UNINOTE_HOME=tmp_path))
    assert embedded["task_always_eager"] is True
    served = celery_config(Settings(UNINOTE_HOME=tmp_path, celery_broker_url="redis://127.0.0.1:6379/0"))
    assert served["task_always_eager"] is False and served["broker_url"] == "redis://127.0.0.1:6379/0"
    for conf in (embedded, served):
        assert conf["task_serializer"] == conf["result_serializer"] == "json" and conf["accept_content"] == ["json"]
        assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"]
        assert conf["worker_prefetch_multiplier"] == 1
        assert [q.name for q in conf["task_queues"]] == list(QUEUES) == ["index", "backfill", "audit", "webhooks"]


def test_the_visibility_timeout_follows_the_longest_batch(tmp_path):
    """kombu's default (1 h) kept a dead worker's batch message hidden for an hour; now a batch may run
    BATCH_TIME_LIMIT_S and a taken message comes back after two hard limits plus the longest retry wait."""
    from workers.celery_app import HARD_LIMIT_MARGIN_S, visibility_timeout_s
    from workers.failures import RETRY_BACKOFF_MAX_S

    for limit in (60.0, 300.0):
        settings = Settings(UNINOTE_HOME=tmp_path, celery_broker_url="redis://127.0.0.1:6379/0", batch_time_limit_s=limit)
        conf = celery_config(settings)
        expected = 2 * (limit + HARD_LIMIT_MARGIN_S) + RETRY_BACKOFF_MAX_S
        assert conf["broker_transport_options"]["visibility_timeout"] == visibility_timeout_s(settings) == expected
        for task in ("uninote.backfill", "uninote.reindex_library"):
            assert conf["task_annotations"][task] == {"soft_time_limit": limit, "time_limit": limit + HARD_LIMIT_MARGIN_S}
    assert visibility_timeout_s(Settings(UNINOTE_HOME=tmp_path)) < 3600 / 3
    assert app.tasks["uninote.backfill"].soft_time_limit == Settings().batch_time_limit_s  # applied to the task


def test_tasks_are_routed_to_their_queues(tmp_path):
    configure(app, Settings(UNINOTE_HOME=tmp_path))
    assert is_eager(app)
    routes = {name: app.amqp.router.route({}, name)["queue"].name for name in (
        "uninote.index_notes", "uninote.delete_note", "uninote.backfill", "uninote.reindex_library", "uninote.lookback")}
    assert routes == {"uninote.index_notes": "index", "uninote.delete_note": "index", "uninote.backfill": "backfill",
                      "uninote.reindex_library": "backfill", "uninote.lookback": "audit"}
    for name in routes:
        assert app.tasks[name].acks_late and app.tasks[name].reject_on_worker_lost


def test_no_worker_without_a_broker(tmp_path):
    with pytest.raises(NoBrokerError, match="CELERY_BROKER_URL is not set"):
        start_worker(["index"], 1, settings=Settings(UNINOTE_HOME=tmp_path))


def test_local_store_refuses_several_processes_with_a_clear_message(tmp_path):
    settings = Settings(UNINOTE_HOME=tmp_path)
    with pytest.raises(ValueError, match="needs a Qdrant server.*QDRANT_URL"):
        preflight(settings, concurrency=2, pool="prefork")
    preflight(settings, concurrency=1, pool="prefork")  # nobody holds the folder: fine
    holder = open_store(settings)  # e.g. the CLI, or another worker
    try:
        with pytest.raises(StoreLockedError, match="already open in another process.*QDRANT_URL"):
            preflight(settings, concurrency=1, pool="solo")
    finally:
        holder.close()
    preflight(Settings(UNINOTE_HOME=tmp_path, qdrant_url="http://qdrant:6333"), concurrency=8, pool="prefork")
