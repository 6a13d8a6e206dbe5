"""Queue wiring, and the embedded worker and cron threads of the one-process default.

Production runs the same job code in `worker.py` (an RQ HerokuWorker) and the periodic
table of `streampay/cron.py` on RQ's cron scheduler (`clock.py`). Jobs take ids, never objects, and each is
safe to run twice.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

import redis
from flask import Flask, current_app
from redis.backoff import EqualJitterBackoff
from rq import Queue, SimpleWorker
from rq.cron import CronScheduler
from rq.exceptions import StopRequested
from rq.scheduler import RQScheduler
from rq.timeouts import TimerDeathPenalty
from rq.worker import HerokuWorker

from streampay.extensions import redis_client

log = logging.getLogger(__name__)
QUEUES = ("high", "default", "low")
CRON_CONFIG = "streampay.cron"


def queue(name: str = "default") -> Queue:
    # Synchronous only when no worker will ever read this in-process Redis (a CLI on the embedded
    # default); tests run their jobs through a real worker in burst mode.
    cfg = current_app.config
    is_async = bool(cfg["REDIS_URL"] or cfg.get("TESTING") or current_app.extensions.get("streampay.embedded_worker"))
    return Queue(name, connection=redis_client(), is_async=is_async)


def enqueue(func, *args, queue_name: str = "default", **options):
    """Enqueue after the caller's database commit, so the worker sees what the job is about."""
    return queue(queue_name).enqueue(func, *args, **options)


REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)


class RedisDownInOneLine(logging.Filter):
    """A lost Redis said in one line, without its traceback: RQ's worker logs one as it quits on it, and the
    worker dyno starts a fresh worker (and says so); that is routine in an outage, not a bug to read."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], REDIS_DOWN):
            record.msg, record.args = f"{record.getMessage()} (Redis: {record.exc_info[1]})", None
            record.exc_info = record.exc_text = None
        return True


class Scheduler(RQScheduler):
    """rq's scheduler of the worker (retries with a delay, jobs queued for later) that outlives Redis: while Redis
    is away it says so in one line and tries again with backoff, forever.

    RQ's own loop raises out of its process on the first lost connection, printing a traceback; the worker then
    starts another one, which does the same for as long as Redis is away.
    """

    max_wait = 5.0  # seconds between attempts while Redis is away, at most

    def work(self):
        self._install_signal_handlers()
        failures = 0
        while not self._stop_requested:
            try:
                if failures or self.last_heartbeat is None:
                    self.register_birth()  # again after a wipe: the heartbeat alone leaves half a record
                if self.should_reacquire_locks:
                    self.acquire_locks()
                self.heartbeat()
                self.enqueue_scheduled_jobs()
                if failures:
                    log.warning("scheduler: Redis answers again after %d failed attempts", failures)
                failures, wait = 0, self.interval
            except REDIS_DOWN as exc:
                failures += 1
                wait = backoff(failures, self.max_wait)
                log.warning("scheduler: Redis unreachable (%s); trying again in %.1f s", exc, wait)
            time.sleep(wait)
        with contextlib.suppress(*REDIS_DOWN):
            self.stop()


class ThreadScheduler(Scheduler):
    """The scheduler on a thread instead of a forked process."""

    def _install_signal_handlers(self):
        pass

    def start(self):
        self._status = self.Status.STARTED
        self._process = threading.Thread(target=self.work, name="rq-scheduler", daemon=True)
        self._process.start()
        return self._process


class _Scheduling:
    """A worker whose scheduler is `scheduler_class`, waiting at most its `max_connection_wait_time` for Redis."""

    scheduler_class: type[Scheduler] = Scheduler

    def _start_scheduler(self, burst: bool = False, logging_level: str | None = "INFO", *args, **kwargs):
        self.scheduler = self.scheduler_class(self.queues, connection=self.connection, logging_level=logging_level)
        self.scheduler.max_wait = min(Scheduler.max_wait, self.max_connection_wait_time)
        self.scheduler.acquire_locks(auto_start=not burst)
        if burst and self.scheduler.acquired_locks:
            try:
                self.scheduler.enqueue_scheduled_jobs()
            finally:
                self.scheduler.release_locks()


class DynoWorker(_Scheduling, HerokuWorker):
    """The worker dyno's worker (`worker.py`): a dyno restart ends its job cleanly, and its scheduler outlives Redis."""


class ThreadWorker(_Scheduling, SimpleWorker):
    """A worker on a thread: signals belong to the main thread, so timeouts use a timer."""

    death_penalty_class = TimerDeathPenalty
    scheduler_class = ThreadScheduler

    def _install_signal_handlers(self):
        pass


def backoff(failures: int, max_seconds: float) -> float:
    """Seconds a background loop waits after `failures` failed attempts in a row at a dependency that went away."""
    # Doubling, with jitter so that processes do not come back in step; the exponent is bounded (floats overflow).
    return EqualJitterBackoff(cap=max_seconds, base=min(0.25, max_seconds)).compute(min(failures, 30))


class Clock(CronScheduler):
    """RQ's cron scheduler that outlives Redis: while Redis is away it tries again with backoff, forever,
    and schedules again as soon as it answers (a job that fell due meanwhile is enqueued at once).

    RQ's own loop ends the process on the first lost connection, and nothing would reap sessions again.
    """

    max_wait = 5.0  # seconds between attempts while Redis is away, at most

    def start(self):
        self.log.info("CronScheduler %s: starting...", self.name)
        self._install_signal_handlers()
        failures = 0
        try:
            while True:
                try:
                    if self.enqueue_jobs():
                        self.save()
                    self.heartbeat()  # registers this scheduler again after a Redis wipe
                    wait = self.calculate_sleep_interval()
                    if failures:
                        log.warning("clock: Redis answers again after %d failed attempts; scheduling", failures)
                    failures = 0
                except REDIS_DOWN as exc:
                    failures += 1
                    wait = backoff(failures, self.max_wait)
                    log.warning("clock: Redis unreachable (%s); trying again in %.1f s", exc, wait)
                if wait > 0:
                    time.sleep(wait)
        except (KeyboardInterrupt, StopRequested):
            self.log.info("CronScheduler %s: stop requested", self.name)
        finally:
            with contextlib.suppress(*REDIS_DOWN):
                self.register_death()


class ThreadCron(Clock):
    def _install_signal_handlers(self):
        pass


def start_embedded(app: Flask) -> None:
    """Run an RQ worker and the cron scheduler on daemon threads of this process."""
    if app.config["REDIS_URL"] or not app.config["EMBEDDED_WORKER"] or app.extensions.get("streampay.embedded_worker"):
        return
    connection = app.extensions["streampay.redis"]
    app.extensions["streampay.embedded_worker"] = True

    # A job started, done, kept: routine for this worker, so said only at DEBUG; failures still show.
    chatter = "DEBUG" if app.config["LOG_LEVEL"] == "DEBUG" else "WARNING"
    logging.getLogger("rq.cron").setLevel(chatter)

    def work():
        with app.app_context():
            ThreadWorker([Queue(n, connection=connection) for n in QUEUES], connection=connection).work(
                logging_level=chatter, with_scheduler=True
            )

    def schedule():
        cron = ThreadCron(connection=connection)
        cron.load_config_from_file(CRON_CONFIG)
        cron.start()

    threading.Thread(target=work, name="rq-worker", daemon=True).start()
    threading.Thread(target=schedule, name="rq-cron", daemon=True).start()
    log.info("embedded worker and cron scheduler started")


def ping() -> str:
    """A job that does nothing but answer: shows a worker is taking jobs."""
    return "pong"
