"""GET /metrics: Prometheus's text format behind METRICS_TOKEN, off the API document.

This process's samples (all gunicorn workers' with PROMETHEUS_MULTIPROC_DIR, see streampay/metrics.py),
and what every dyno shares, read at scrape time: RQ's queues in Redis, deposits and payouts in
PostgreSQL, so they are the same whichever process answers.
"""

from __future__ import annotations

import hmac
import os

from flask import Blueprint, Flask, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from rq import Queue
from sqlalchemy import func, select

from streampay.extensions import db
from streampay.jobs import QUEUES
from streampay.metrics import DEPENDENCY_ERRORS
from streampay.stellar.models import Deposit, Payout, PayoutAttempt

blp = Blueprint("metrics", __name__)


class SharedStateCollector:
    """What every dyno shares, read when scraped: RQ's queues in Redis, deposits and payouts in PostgreSQL."""

    def __init__(self, app: Flask):
        self.app = app

    def collect(self):
        yield from self._queues()
        yield from self._money()

    def _money(self):
        deposits = CounterMetricFamily("streampay_deposits", "On-chain deposits seen, by status.", labels=["status"])
        received = CounterMetricFamily("streampay_deposited_stroops", "Stroops received into custody.")
        payouts = CounterMetricFamily(
            "streampay_payouts", "Payout payments by status: in_flight, paid, refused, returned.", labels=["status"]
        )
        submitted = CounterMetricFamily("streampay_payout_envelopes_submitted", "Payout envelopes sent to Horizon.")
        up = GaugeMetricFamily("streampay_database_up", "1 if PostgreSQL answered this scrape.")
        try:
            total = 0
            for status, count, amount in db.session.execute(
                select(Deposit.status, func.count(), func.sum(Deposit.amount)).group_by(Deposit.status)
            ):
                deposits.add_metric([status.value], count)
                total += int(amount)
            received.add_metric([], total)
            for status, count in db.session.execute(select(Payout.status, func.count()).group_by(Payout.status)):
                payouts.add_metric([status.value], count)
            submitted.add_metric([], db.session.scalar(select(func.coalesce(func.sum(PayoutAttempt.submissions), 0))))
            db.session.rollback()
            up.add_metric([], 1)
        except Exception:  # noqa: BLE001 (a scrape says the database is down; it does not fail)
            db.session.rollback()
            DEPENDENCY_ERRORS.labels("postgresql").inc()
            up.add_metric([], 0)
            yield up
            return
        yield from (deposits, received, payouts, submitted, up)

    def _queues(self):
        # The Stellar SDK comes with it: a `flask` command does not pay for it, a server preloads it.
        from streampay.stellar import reconcile

        depth = GaugeMetricFamily("streampay_rq_queue_depth", "Jobs waiting, by queue.", labels=["queue"])
        failed = GaugeMetricFamily("streampay_rq_failed_jobs", "Failed jobs, by queue.", labels=["queue"])
        up = GaugeMetricFamily("streampay_redis_up", "1 if Redis answered this scrape.")
        try:
            connection = self.app.extensions["streampay.redis"]
            for name in QUEUES:
                queue = Queue(name, connection=connection)
                depth.add_metric([name], queue.count)
                failed.add_metric([name], queue.failed_job_registry.count)
            kept = reconcile.last_result()
            up.add_metric([], 1)
        except Exception:  # noqa: BLE001 (a scrape says Redis is down; it does not fail)
            DEPENDENCY_ERRORS.labels("redis").inc()
            up.add_metric([], 0)
            yield up
            return
        yield from (depth, failed, up)
        if kept:
            yield from _reconciled(kept)


def _reconciled(kept: dict):
    """The latest `flask stellar reconcile` or daily reconcile job: when, whether the ledger agreed, by how much."""
    at = GaugeMetricFamily("streampay_reconcile_last_run_timestamp_seconds", "When the ledger was last reconciled.")
    at.add_metric([], kept["at"])
    ok = GaugeMetricFamily("streampay_reconcile_ok", "1 if the last reconcile found the ledger and network agree.")
    ok.add_metric([], 1 if kept["ok"] else 0)
    difference = GaugeMetricFamily(
        "streampay_reconcile_difference_stroops",
        "Stroops by which the last reconcile found custody off: ledger less network, or on chain less its history.",
        labels=["check"],
    )
    for check in ("ledger_vs_network", "chain_vs_history"):
        if kept[check] is not None:
            difference.add_metric([check], kept[check])
    mismatches = GaugeMetricFamily(
        "streampay_reconcile_mismatches",
        "Payments the last reconcile could not match: on chain but not in the ledger, or paid but not on chain.",
        labels=["kind"],
    )
    for kind in ("unknown_payments", "paid_not_on_network"):
        mismatches.add_metric([kind], kept[kind])
    yield from (at, ok, difference, mismatches)


def _exposition() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        own = CollectorRegistry()
        multiprocess.MultiProcessCollector(own)
    else:
        own = REGISTRY
    shared = CollectorRegistry()
    shared.register(SharedStateCollector(current_app._get_current_object()))
    return generate_latest(own) + generate_latest(shared)


@blp.route("/metrics")
def metrics():
    """Prometheus's text format; `Authorization: Bearer METRICS_TOKEN`. Off (404) without a token set."""
    token = current_app.config.get("METRICS_TOKEN")
    if not token:
        return Response("metrics are off: set METRICS_TOKEN\n", 404, mimetype="text/plain")
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), token.encode()):
        return Response("a bearer token is needed\n", 401, {"WWW-Authenticate": "Bearer"}, mimetype="text/plain")
    return Response(_exposition(), mimetype=CONTENT_TYPE_LATEST)


def init_app(app: Flask) -> None:
    app.register_blueprint(blp)
