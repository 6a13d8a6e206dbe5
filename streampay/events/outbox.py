"""Record an event in the caller's transaction; after its commit, a job fans it out.

Nothing is sent from here: a rolled-back transaction takes its events with it, and a committed
one is dispatched by the job queued after the commit, or by the periodic sweep if that enqueue
was lost (Redis down, a CLI with no worker).
"""

from __future__ import annotations

import logging
import uuid

from flask import has_app_context
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from streampay.dbtypes import utcnow
from streampay.events.models import EVENT_TYPES, Event
from streampay.extensions import db

log = logging.getLogger(__name__)
DISPATCH = "streampay.webhooks.delivery.dispatch"
_PENDING = "streampay.events.pending"


def new_id() -> str:
    return f"evt_{uuid.uuid4().hex}"


def emit(event_type: str, data: dict, *user_ids) -> Event:
    """Add an event to the current transaction (no commit): it exists only if the caller commits."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    event = Event(
        id=new_id(),
        type=event_type,
        user_ids=sorted({str(u) for u in user_ids if u is not None}),
        data=data,
        created_at=utcnow(),
    )
    db.session.add(event)
    db.session.info[_PENDING] = True
    return event


@sa_event.listens_for(Session, "after_commit")
def _dispatch_after_commit(session: Session) -> None:
    if not session.info.pop(_PENDING, False) or not has_app_context():
        return
    from streampay import jobs  # RQ loads when an event is dispatched, not with every `flask` command

    try:
        q = jobs.queue("default")
        # A synchronous queue would run the job inside this commit's hook; the sweep takes those.
        if q.is_async:
            q.enqueue(DISPATCH, job_timeout=300)
    except Exception:  # Redis away: the periodic sweep dispatches it
        log.warning("event dispatch not queued; the sweep will take it", exc_info=True)


@sa_event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)
