"""The RQ worker dyno: `python worker.py [queue ...]` (default: high, default, low)."""

import os
import sys

from dotenv import load_dotenv

load_dotenv()

from rq.worker import HerokuWorker  # noqa: E402

from streampay import create_app  # noqa: E402
from streampay.extensions import db  # noqa: E402
from streampay.jobs import QUEUES, queue  # noqa: E402


def main(names: list[str]) -> None:
    app = create_app({"EMBEDDED_WORKER": False})
    if not app.config["REDIS_URL"]:
        sys.exit("worker.py needs REDIS_URL; the embedded default runs its worker inside `python wsgi.py`.")
    with app.app_context():
        # Each job runs in a forked child: it must not reuse the parent's database connections.
        os.register_at_fork(after_in_child=lambda: db.engine.dispose(close=False))
        worker = HerokuWorker([queue(n) for n in names or QUEUES], connection=queue().connection)
        # with_scheduler: rq's Retry with a delay (webhooks, media) needs a scheduler to queue the job again.
        worker.work(logging_level=app.config["LOG_LEVEL"], with_scheduler=True)


if __name__ == "__main__":
    main(sys.argv[1:])
