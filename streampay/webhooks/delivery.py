"""The jobs that fan events out and deliver them, signed the Standard Webhooks way.

`dispatch` turns undispatched events into delivery rows (and mail) in one transaction, then
queues one `deliver` job per row. `deliver` makes one attempt with a short timeout and records
it; a failed attempt raises, and rq's Retry tries again on the schedule (about a day). No
database transaction is open while a receiver is waited for.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta

import requests
from flask import current_app
from rq import Retry, get_current_job
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy import delete, exists, false, or_, select
from standardwebhooks.webhooks import Webhook

from streampay import jobs
from streampay.dbtypes import utcnow
from streampay.events.models import Event
from streampay.extensions import db, redis_client
from streampay.webhooks import addresses
from streampay.webhooks.addresses import AddressRefused, check_url
from streampay.webhooks.models import Delivery, DeliveryStatus, Endpoint

log = logging.getLogger(__name__)
MAILED = frozenset({"balance.low", "payout.paid", "payout.refused"})
USER_AGENT = "StreamPay-Webhooks/1"
STUCK_AFTER = timedelta(minutes=10)
ACTIVE = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


class DeliveryFailed(Exception):
    """One attempt failed: rq's Retry schedules the next."""


def signature_headers(endpoint: Endpoint, event_id: str, body: str, at: datetime) -> dict:
    secrets = [endpoint.secret]
    if endpoint.previous_secret and endpoint.previous_secret_expires_at and endpoint.previous_secret_expires_at > at:
        secrets.append(endpoint.previous_secret)
    signatures = " ".join(Webhook(s).sign(event_id, at, body) for s in secrets)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


def _job_id(delivery_id: int) -> str:
    return f"webhook-delivery-{delivery_id}"


def enqueue(delivery_id: int) -> None:
    """Queue an attempt for a delivery unless one is already queued, running or scheduled."""
    try:
        if Job.fetch(_job_id(delivery_id), connection=redis_client()).get_status() in ACTIVE:
            return
    except NoSuchJobError:
        pass
    schedule = current_app.config["WEBHOOK_RETRY_SCHEDULE"]
    jobs.enqueue(
        deliver,
        delivery_id,
        job_id=_job_id(delivery_id),
        job_timeout=current_app.config["WEBHOOK_TIMEOUT_SECONDS"] + 30,
        retry=Retry(max=len(schedule), interval=schedule) if schedule else None,
        failure_ttl=7 * 86400,
    )


def _matching(event: Event, endpoints: list[Endpoint]) -> list[Endpoint]:
    audience = set(event.user_ids)
    return [e for e in endpoints if event.type in e.event_types and (e.platform or str(e.user_id) in audience)]


def dispatch(limit: int = 500) -> int:
    """Write the deliveries (and mail) of events not yet dispatched; returns how many events. Safe to repeat."""
    stmt = select(Event).where(Event.dispatched_at.is_(None)).order_by(Event.created_at).limit(limit)
    events = list(db.session.scalars(stmt.with_for_update(skip_locked=True)))
    if not events:
        db.session.rollback()
        return _resume_stuck()
    users = {uuid.UUID(u) for e in events for u in e.user_ids}
    endpoints = list(
        db.session.scalars(
            select(Endpoint).where(
                Endpoint.enabled.is_(True),
                or_(Endpoint.platform.is_(True), Endpoint.user_id.in_(users) if users else false()),
            )
        )
    )
    new, mailed = [], []
    for event in events:
        for endpoint in _matching(event, endpoints):
            delivery = Delivery(endpoint_id=endpoint.id, event_id=event.id, status=DeliveryStatus.PENDING, attempts=0)
            db.session.add(delivery)
            new.append(delivery)
        if event.type in MAILED and event.user_ids:
            mailed.append(event.id)
        event.dispatched_at = utcnow()
    db.session.flush()
    ids = [d.id for d in new]
    db.session.commit()
    for delivery_id in ids:
        enqueue(delivery_id)
    for event_id in mailed:
        jobs.enqueue("streampay.mail.jobs.send_for_event", event_id, job_id=f"mail-{event_id}", job_timeout=120)
    return len(events) + _resume_stuck()


def _resume_stuck() -> int:
    """Deliveries whose first attempt was never queued (Redis lost the job): queue them again."""
    stuck = db.session.scalars(
        select(Delivery.id).where(
            Delivery.status == DeliveryStatus.PENDING,
            Delivery.attempts == 0,
            Delivery.created_at < utcnow() - STUCK_AFTER,
        )
    ).all()
    db.session.rollback()
    for delivery_id in stuck:
        enqueue(delivery_id)
    return 0


def _attempt(url: str, body: str, headers: dict) -> tuple[int | None, str | None, int]:
    started = time.monotonic()
    try:
        check_url(url)
        with addresses.session() as http:
            reply = http.post(
                url,
                data=body.encode(),
                headers=headers,
                timeout=current_app.config["WEBHOOK_TIMEOUT_SECONDS"],
                allow_redirects=False,
            )
            reply.close()
        code, error = reply.status_code, None if 200 <= reply.status_code < 300 else f"HTTP {reply.status_code}"
    except AddressRefused as exc:
        code, error = None, f"refused: {exc}"
    except requests.RequestException as exc:
        code, error = None, f"{type(exc).__name__}: {exc}"[:200]
    return code, error, int((time.monotonic() - started) * 1000)


def deliver(delivery_id: int) -> str:
    """One attempt; raises DeliveryFailed for rq to retry later."""
    try:
        delivery = db.session.get(Delivery, delivery_id)
        if delivery is None or delivery.status is not DeliveryStatus.PENDING:
            db.session.rollback()
            return "skipped"
        endpoint, event = delivery.endpoint, delivery.event
        if not endpoint.enabled:
            delivery.move_to(DeliveryStatus.FAILED)
            delivery.error = "endpoint disabled"
            db.session.commit()
            return "disabled"
        body = json.dumps(event.body(), separators=(",", ":"))
        now = datetime.now(UTC)
        headers = signature_headers(endpoint, event.id, body, now)
        url = endpoint.url
        db.session.rollback()  # nothing held open while the receiver answers
        code, error, duration = _attempt(url, body, headers)
        return _record(delivery_id, code, error, duration)
    finally:
        db.session.remove()


def _record(delivery_id: int, code: int | None, error: str | None, duration: int) -> str:
    delivery = db.session.scalars(select(Delivery).where(Delivery.id == delivery_id).with_for_update()).one_or_none()
    if delivery is None or delivery.status is not DeliveryStatus.PENDING:
        db.session.rollback()
        return "skipped"
    endpoint = db.session.scalars(select(Endpoint).where(Endpoint.id == delivery.endpoint_id).with_for_update()).one()
    delivery.attempts += 1
    delivery.last_attempt_at = utcnow()
    delivery.response_code, delivery.duration_ms, delivery.error = code, duration, error
    if error is None:
        delivery.move_to(DeliveryStatus.SUCCEEDED)
        delivery.delivered_at = delivery.last_attempt_at
        endpoint.consecutive_failures = 0
        db.session.commit()
        return "delivered"
    endpoint.consecutive_failures += 1
    if code == 410:
        _disable(endpoint, "The endpoint answered 410 Gone.")
    elif endpoint.consecutive_failures >= current_app.config["WEBHOOK_DISABLE_AFTER_FAILURES"]:
        _disable(endpoint, f"{endpoint.consecutive_failures} failed attempts in a row.")
    final = not endpoint.enabled or (error or "").startswith("refused:") or not _retries_left()
    if final:
        delivery.move_to(DeliveryStatus.FAILED)
    db.session.commit()
    log.info("webhook attempt failed", extra={"delivery_id": delivery_id, "error": error, "final": final})
    if final:
        return "failed"
    raise DeliveryFailed(error)


def _disable(endpoint: Endpoint, reason: str) -> None:
    if endpoint.enabled:
        endpoint.enabled = False
        endpoint.disabled_reason = reason
        log.warning("webhook endpoint disabled", extra={"endpoint_id": str(endpoint.id), "reason": reason})


def _retries_left() -> bool:
    job = get_current_job()
    return bool(job and job.retries_left)


def prune() -> int:
    """Forget events and their deliveries older than EVENT_RETENTION_DAYS (a periodic job); returns how many events.

    A delivery still pending keeps its event, however old: it is forgotten after it ends.
    """
    cutoff = utcnow() - timedelta(days=current_app.config["EVENT_RETENTION_DAYS"])
    db.session.execute(delete(Delivery).where(Delivery.created_at < cutoff, Delivery.status != DeliveryStatus.PENDING))
    unheard = ~exists(select(Delivery.id).where(Delivery.event_id == Event.id))
    gone = db.session.execute(delete(Event).where(Event.created_at < cutoff, Event.dispatched_at.is_not(None), unheard))
    db.session.commit()
    return gone.rowcount
