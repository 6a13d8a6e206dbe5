"""Each Procfile line really starts, against the real PostgreSQL and Redis."""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.cron import CronScheduler
from rq.job import JobStatus

from streampay.sandbox.faults import Dyno, free_port, procfile, wait_for

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(
    not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")),
    reason="the dynos share state only through a real PostgreSQL and Redis",
)


def start(name: str, **env) -> Dyno:
    """The Procfile line `name`, its output to a file: a pipe nobody reads would stall the dyno once it filled."""
    return Dyno(name, **{"LOG_LEVEL": "WARNING", **env}).start()


def stop(dyno: Dyno) -> str:
    """SIGTERM (then SIGKILL) to the dyno's process group; what it printed."""
    return dyno.stop()


def test_procfile_has_the_four_dynos():
    assert set(procfile()) == {"release", "web", "worker", "clock"}


def test_release_applies_migrations():
    proc = subprocess.run(
        ["bash", "-c", procfile()["release"]],
        cwd=ROOT,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr.decode()


@contextlib.contextmanager
def web_dyno(**env):
    """The web line on a free port, ready (its /readyz answers 200); yields the port and a function that reads
    what the dyno has printed so far (all of it, once the block is left)."""
    with web_process(**env) as (port, proc):
        yield port, proc.log


@contextlib.contextmanager
def web_process(**env):
    """web_dyno's, yielding the port and the dyno itself (its pid, its workers' pids, its log)."""
    port = free_port()
    proc = start("web", PORT=str(port), **env)

    def ready():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as reply:  # noqa: S310
                return reply.status == 200
        except OSError:
            return not proc.alive()

    try:
        assert wait_for(ready, 60) and proc.alive(), stop(proc)
        yield port, proc
    finally:
        stop(proc)


def test_web_serves_health_and_readiness():
    with web_dyno(WEB_CONCURRENCY="1", WEB_CONNECTIONS="50") as (port, _):
        assert port


def test_worker_takes_a_job():
    connection = redis.Redis.from_url(os.environ["REDIS_URL"])
    job = Queue("default", connection=connection).enqueue("streampay.jobs.ping")
    proc = start("worker")
    try:
        finished = wait_for(lambda: job.get_status(refresh=True) == JobStatus.FINISHED, 60)
        assert finished, stop(proc)
        assert job.return_value() == "pong"
    finally:
        stop(proc)


def test_clock_starts_the_cron_scheduler():
    connection = redis.Redis.from_url(os.environ["REDIS_URL"])
    proc = start("clock")
    try:
        registered = wait_for(lambda: CronScheduler.all(connection) or not proc.alive(), 30)
        assert registered and proc.alive(), stop(proc)
    finally:
        stop(proc)
    assert shlex.split(procfile()["clock"]) == ["python", "clock.py"]
