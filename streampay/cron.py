"""The periodic jobs table, read by the clock dyno (`python clock.py`, RQ's CronScheduler) and the embedded scheduler.

Exactly one process runs it: RQ's cron scheduler has no leader lock. Intervals come from the
same settings as the app (streampay.config, see .env.example).
"""

from rq import cron

from streampay.config import load
from streampay.streaming.jobs import reap

settings = load()

cron.register(
    reap,
    "high",
    interval=settings["REAPER_INTERVAL_SECONDS"],
    job_timeout=120,
    name="streaming-reaper",
)

from streampay.stellar.jobs import reconcile_custody, run_payouts, scan_deposits  # noqa: E402

cron.register(
    scan_deposits,
    "default",
    interval=settings["DEPOSIT_SCAN_INTERVAL_SECONDS"],
    job_timeout=300,
    name="stellar-deposit-scan",
)
cron.register(
    run_payouts,
    "default",
    interval=settings["PAYOUT_INTERVAL_SECONDS"],
    job_timeout=1800,
    name="stellar-payouts",
)
cron.register(
    reconcile_custody,
    "low",
    interval=settings["RECONCILE_INTERVAL_SECONDS"],
    job_timeout=1800,
    name="stellar-reconcile",
)

from streampay.webhooks.delivery import dispatch  # noqa: E402
from streampay.webhooks.delivery import prune as prune_events  # noqa: E402

# The outbox sweep: events whose after-commit dispatch was lost (Redis away, a CLI with no worker).
cron.register(
    dispatch,
    "default",
    interval=settings["EVENT_SWEEP_INTERVAL_SECONDS"],
    job_timeout=300,
    name="events-dispatch",
)
cron.register(prune_events, "low", interval=3600, job_timeout=600, name="events-prune")

from streampay.idempotency import prune  # noqa: E402

cron.register(prune, "low", interval=3600, job_timeout=300, name="idempotency-keys-prune")

from streampay.analytics.jobs import fold as fold_analytics  # noqa: E402

cron.register(
    fold_analytics,
    "low",
    interval=settings["ANALYTICS_FOLD_INTERVAL_SECONDS"],
    job_timeout=900,
    name="analytics-fold",
)

from streampay.content.jobs import requeue_stuck_media  # noqa: E402

cron.register(
    requeue_stuck_media,
    "low",
    interval=settings["MEDIA_SWEEP_INTERVAL_SECONDS"],
    job_timeout=300,
    name="content-media-sweep",
)

from streampay.auth.jobs import prune_tokens  # noqa: E402

cron.register(prune_tokens, "low", interval=3600, job_timeout=600, name="auth-prune-tokens")
