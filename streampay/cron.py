"""The periodic jobs table, read by `rq cron streampay.cron` (the clock dyno) and the embedded scheduler.

Exactly one process runs it: RQ's cron scheduler has no leader lock. Intervals come from the
environment (see .env.example).
"""

import os

from rq import cron

from streampay.streaming.jobs import reap

cron.register(
    reap,
    "high",
    interval=int(os.environ.get("REAPER_INTERVAL_SECONDS", "15")),
    job_timeout=120,
    name="streaming-reaper",
)
