"""Each Procfile line really starts, against the real PostgreSQL and Redis."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.cron import CronScheduler
from rq.job import JobStatus

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(
    not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")),
    reason="the dynos share state only through a real PostgreSQL and Redis",
)


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip() and not line.startswith("#"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(name: str, **env) -> subprocess.Popen:
    bin_dir = str(Path(sys.executable).parent)
    full_env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "LOG_LEVEL": "WARNING", **env}
    return subprocess.Popen(
        ["bash", "-c", "exec " + procfile()[name]],
        cwd=ROOT,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    with proc.stdout:
        return proc.stdout.read().decode(errors="replace")


def wait_for(check, seconds: float = 30.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    return None


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
    """The web line on a free port, ready (its /readyz answers 200); yields the port, then its log."""
    port = free_port()
    proc = start("web", PORT=str(port), **env)

    def ready():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as reply:  # noqa: S310
                return reply.status == 200
        except OSError:
            return proc.poll() is not None

    log = []
    try:
        assert wait_for(ready, 60) and proc.poll() is None, stop(proc)
        yield port, log
    finally:
        log.append(stop(proc))


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
        registered = wait_for(lambda: CronScheduler.all(connection) or proc.poll() is not None, 30)
        assert registered and proc.poll() is None, stop(proc)
    finally:
        stop(proc)
    assert shlex.split(procfile()["clock"]) == ["python", "clock.py"]
