"""The RQ worker dyno: `python worker.py [queue ...]` (default: high, default, low).

It outlives Redis going away: RQ's worker waits out a lost connection while it waits for jobs, and
quits on one anywhere else (at birth, mid-job, in its housekeeping); this loop then starts a fresh
worker, with backoff, until Redis answers. Only a shutdown signal ends it.
"""

import contextlib
import logging
import os
import sys
import time

from dotenv import load_dotenv

load_dotenv()

from rq.exceptions import StopRequested  # noqa: E402

from streampay import create_app, preload  # noqa: E402
from streampay.extensions import db  # noqa: E402
from streampay.jobs import QUEUES, REDIS_DOWN, DynoWorker, RedisDownInOneLine, backoff, queue  # noqa: E402

log = logging.getLogger("streampay.worker")


def main(names: list[str]) -> None:
    app = create_app({"EMBEDDED_WORKER": False})
    if not app.config["REDIS_URL"]:
        sys.exit("worker.py needs REDIS_URL; the embedded default runs its worker inside `python wsgi.py`.")
    preload()  # once here, not in every job's forked work horse
    logging.getLogger("rq.worker").addFilter(RedisDownInOneLine())
    max_wait = app.config["RECONNECT_MAX_SECONDS"]
    failures = 0
    with app.app_context():
        # Each job runs in a forked child: it must not reuse the parent's database connections.
        os.register_at_fork(after_in_child=lambda: db.engine.dispose(close=False))
        while True:
            worker, began = None, time.monotonic()
            with contextlib.suppress(*REDIS_DOWN):
                worker = DynoWorker([queue(n) for n in names or QUEUES], connection=queue().connection)
                worker.max_connection_wait_time = max_wait  # RQ's own wait while it dequeues (60 s by default)
                # with_scheduler: rq's Retry with a delay (webhooks, media) needs a scheduler to queue jobs again.
                worker.work(logging_level=app.config["LOG_LEVEL"], with_scheduler=True)
            if worker is not None and worker._shutdown_requested_date is not None:  # SIGTERM or SIGINT: a real stop
                return
            failures = 1 if time.monotonic() - began > 60 else failures + 1
            wait = backoff(failures, max_wait)
            log.warning("worker: lost Redis; a fresh worker in %.1f s", wait)
            try:
                time.sleep(wait)
            except StopRequested:  # RQ's signal handlers outlive its loop: a stop while waiting
                return


if __name__ == "__main__":
    main(sys.argv[1:])
