"""Real Celery worker processes for tests (start one in its own process group, stop or SIGKILL it, wait on
it) and the Library of the in-process (broker-less) worker mode."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import pytest

from app.settings import Settings

if TYPE_CHECKING:
    from app.library import Library

WORKER_START_TIMEOUT_S = 180  # imports + encoder load on a busy 2-core machine
JOB_TIMEOUT_S = 300


@contextmanager
def process_library(settings: Settings) -> Iterator[Library]:
    """The process Library of the in-process (broker-less) worker mode on `settings`; eager Celery."""
    import torch

    from app.library import Library
    from workers import runtime
    from workers.celery_app import app, configure

    torch.set_num_threads(2)
    configure(app, settings)
    lib = Library.open(settings)
    runtime.use_library(lib)
    try:
        yield lib
    finally:
        runtime.use_library(None)
        lib.close()


def worker_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env |= {"UNINOTE_HOME": str(settings.home), "CELERY_BROKER_URL": settings.celery_broker_url or "",
            "CELERY_RESULT_BACKEND": settings.celery_result_backend or "", "OCR_ENABLED": "false",
            "OMP_NUM_THREADS": "2", "PYTHONUNBUFFERED": "1"}
    if settings.webhook_allow_private_addresses:  # a webhook receiver of the test on 127.0.0.1
        env["WEBHOOK_ALLOW_PRIVATE_ADDRESSES"] = "true"
    for name in ("encoder_url", "encoder_model", "checkpoint", "encoder_concurrency"):  # the encoder it uses
        if getattr(settings, name) is not None:
            env[name.upper()] = str(getattr(settings, name))
    return env


def start_worker(settings: Settings, log: Path, name: str, queues: str = "index,backfill,audit") -> subprocess.Popen:
    """A worker in its own process group (so a SIGKILL takes its pool process with it)."""
    cmd = [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "-Q", queues,
           "-c", "1", "--loglevel=INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
           "-n", f"{name}@%h"]
    with log.open("w") as out:
        return subprocess.Popen(cmd, cwd=log.parent, env=worker_env(settings), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop_worker(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout_s: float = 60) -> None:
    """Warm shutdown (SIGTERM: the task in progress finishes), or `sig`; SIGKILL after timeout_s."""
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    try:  # the pool process of a killed worker: make sure nothing of the group survives
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wait_for(predicate, what: str, proc: subprocess.Popen | None, log: Path, timeout_s: float = JOB_TIMEOUT_S):
    """predicate()'s first truthy value, polled every 0.2 s; fails with the log's tail when `proc` (a worker,
    or None when none runs) exits or timeout_s passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"worker exited ({proc.returncode}) while waiting for {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")
