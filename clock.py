"""The clock dyno: `python clock.py` runs the periodic jobs table (streampay/cron.py) on RQ's cron scheduler.

Run exactly one: RQ's cron has no leader lock. It outlives Redis going away (see `streampay.jobs.Clock`).
"""

import sys

from dotenv import load_dotenv

load_dotenv()

from streampay import create_app  # noqa: E402
from streampay.jobs import CRON_CONFIG, Clock  # noqa: E402


def main() -> None:
    app = create_app({"EMBEDDED_WORKER": False})
    if not app.config["REDIS_URL"]:
        sys.exit("clock.py needs REDIS_URL; the embedded default runs its scheduler inside `python wsgi.py`.")
    clock = Clock(connection=app.extensions["streampay.redis"], logging_level=app.config["LOG_LEVEL"])
    clock.max_wait = app.config["RECONNECT_MAX_SECONDS"]
    clock.load_config_from_file(CRON_CONFIG)
    clock.start()


if __name__ == "__main__":
    main()
