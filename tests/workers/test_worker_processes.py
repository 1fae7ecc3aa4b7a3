"""Real worker processes (`celery -A workers.celery_app worker`) on the Redis of the dev machine / CI,
indexing real grocery notes into a local Qdrant folder that only the worker opens (the test reads it
after the worker stopped). The crash test SIGKILLs a worker mid-backfill, sees the job stalled in
`uninote backfill --status`, and finishes it with `uninote backfill --resume ID` on another worker."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
import redis

from app.records import registry
from app.records.backfills import BackfillState
from app.settings import Settings
from app.store import open_store
from workers.backfill import backfill_status, job_sessions, list_jobs, run_backfill
from workers.celery_app import app, configure
from workers.submit import submit_notes
from workers.tasks import delete_note_task, lookback_task
from worker_process import WORKER_START_TIMEOUT_S, start_worker, stop_worker, wait_for, worker_env

pytestmark = [pytest.mark.services, pytest.mark.slow]


@pytest.fixture
def broker_settings(tmp_path, redis_url):
    """Settings of the test process and its workers: Redis broker/backend (db 15), embedded store and database."""
    settings = Settings(UNINOTE_HOME=tmp_path / "home", celery_broker_url=redis_url, celery_result_backend=redis_url,
                        ocr_enabled=False)
    configure(app, settings)
    yield settings
    configure(app, Settings(UNINOTE_HOME=tmp_path / "home"))  # back to in-process mode


def test_a_worker_indexes_deletes_and_looks_back(broker_settings, grocery_file, tmp_path):
    path = grocery_file(8)
    worker = start_worker(broker_settings, tmp_path / "worker.log", "w1")
    try:
        sessions = job_sessions(broker_settings)
        submission = submit_notes(path, chunk_size=3, settings=broker_settings)
        assert len(submission.task_ids) == 3

        def all_indexed():
            with sessions() as s:
                return registry.count_by_status(s)["indexed"] == 8
        wait_for(all_indexed, "8 indexed notes", worker, tmp_path / "worker.log", WORKER_START_TIMEOUT_S)

        assert delete_note_task.delay("g007").get(timeout=120) == {"note_id": "g007", "known": True}
        out = lookback_task.delay("g000").get(timeout=120)
        assert out["report_id"] and "g000" not in [m[0] for m in out["matches"]]
        assert "g007" not in [m[0] for m in out["matches"]]  # deleted notes are gone from search

        second = start_worker(broker_settings, tmp_path / "second.log", "w2")  # same local folder: refused
        assert second.wait(WORKER_START_TIMEOUT_S) != 0
        assert "already open in another process" in (tmp_path / "second.log").read_text()
    finally:
        stop_worker(worker)

    with open_store(broker_settings) as store:
        assert store.count_notes() == 7
    with sessions() as s:
        assert registry.count_by_status(s) == {"pending": 0, "indexed": 7, "failed": 0, "deleted": 1}


def test_sigkill_mid_backfill_then_another_worker_finishes_it_exactly_once(broker_settings, grocery_file, tmp_path):
    n, batch = 40, 4
    path = grocery_file(n)
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = start_worker(broker_settings, first_log, "first")
    try:
        job = run_backfill(path, detach=True, batch_size=batch, settings=broker_settings)
        assert job.status == BackfillState.RUNNING and job.cursor == 0
        wait_for(lambda: backfill_status(job.id, broker_settings).cursor >= 2 * batch, "two committed batches",
                 first, first_log, WORKER_START_TIMEOUT_S)
        time.sleep(0.5)  # into the middle of the next batch
    finally:
        stop_worker(first, signal.SIGKILL)
    killed_at = backfill_status(job.id, broker_settings)
    assert killed_at.status == BackfillState.RUNNING and 2 * batch <= killed_at.cursor < n, killed_at.describe()
    broker = redis.Redis.from_url(broker_settings.celery_broker_url)
    assert broker.hlen("unacked") >= 1  # the batch in progress: taken, never acknowledged, hidden from others

    # Nobody works on it now: after BACKFILL_STALL_FACTOR batch times without progress it is shown stalled.
    quick = broker_settings.model_copy(update={"backfill_stall_factor": 1.0})
    stalled = wait_for(lambda: next((v for v in list_jobs(quick) if v.job.id == job.id and v.stalled_s), None),
                       "the job to show as stalled", None, first_log)
    assert stalled.job.cursor == killed_at.cursor
    env = worker_env(broker_settings) | {"BACKFILL_STALL_FACTOR": "1"}
    status = subprocess.run([sys.executable, "-m", "app.cli", "backfill", "--status"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert status.returncode == 0, status.stderr
    assert f"backfill {job.id} running: {killed_at.cursor}/{n} lines" in status.stdout
    assert "STALLED: no progress for" in status.stdout and f"uninote backfill --resume {job.id}" in status.stdout

    second = start_worker(broker_settings, second_log, "second")
    try:  # the restart: `uninote backfill --resume ID` queues the batch at the stored cursor
        resumed = subprocess.run([sys.executable, "-m", "app.cli", "backfill", "--resume", str(job.id), "--detach"],
                                 env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0 and f"backfill {job.id} running" in resumed.stdout, resumed.stderr
        done = wait_for(lambda: (lambda j: j if j.status != BackfillState.RUNNING else None)(
            backfill_status(job.id, broker_settings)), "the backfill to finish", second, second_log)
    finally:
        stop_worker(second)

    assert done.status == BackfillState.DONE, done.describe()
    assert (done.cursor, done.total, done.done, done.failed) == (n, n, n, 0)
    assert done.skipped <= batch  # at most the batch cut by the kill was seen again, nothing committed was redone
    with job_sessions(broker_settings)() as s:
        counts = registry.count_by_status(s)
    with open_store(broker_settings) as store:
        stored_ids, _ = store.note_ids(limit=1000)
        assert store.count_notes() == counts["indexed"] == n
    assert sorted(stored_ids) == [f"g{i:03d}" for i in range(n)]
