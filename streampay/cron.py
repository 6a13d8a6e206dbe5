"""The periodic jobs table, read by `rq cron streampay.cron` (the clock dyno) and the embedded scheduler.

Exactly one process runs it: RQ's cron scheduler has no leader lock. Each entry names a job
function by import path, a queue, and an interval in seconds or a cron expression, e.g.

    cron.register(streampay.streaming.jobs.reap, "high", interval=15)
"""

from rq import cron  # noqa: F401  (the table registers through rq.cron.register)
