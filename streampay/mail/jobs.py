"""The mail job: one event, one letter to each of its users who did not turn that kind off."""

from __future__ import annotations

import logging
import uuid

from flask_mailman import EmailMessage

from streampay.events.models import Event
from streampay.extensions import db, redis_client
from streampay.mail.messages import KINDS, compose
from streampay.users.models import User

log = logging.getLogger(__name__)
SENT_TTL = 3 * 86400
# One low-balance mail a day at most, however many streams run low.
BALANCE_LOW_EVERY = 86400


def send_for_event(event_id: str) -> int:
    """Safe to run twice: a letter is marked sent in Redis before it goes, and unmarked if it fails."""
    try:
        event = db.session.get(Event, event_id)
        kind = KINDS.get(event.type) if event else None
        if kind is None:
            return 0
        users = list(db.session.scalars(db.select(User).where(User.id.in_([uuid.UUID(u) for u in event.user_ids]))))
        sent = 0
        for user in users:
            if kind in (user.email_opt_outs or []) or not user.is_active:
                continue
            sent += _send_once(event, user)
        return sent
    finally:
        db.session.remove()


def _send_once(event: Event, user: User) -> int:
    r = redis_client()
    key = f"mail:sent:{event.id}:{user.id}"
    if not r.set(key, 1, nx=True, ex=SENT_TTL):
        return 0
    throttle = f"mail:balance-low:{user.id}" if event.type == "balance.low" else None
    if throttle and not r.set(throttle, 1, nx=True, ex=BALANCE_LOW_EVERY):
        return 0
    letter = compose(event.type, event.data, user.display_name or user.username)
    try:
        EmailMessage(letter.subject, letter.body, to=[user.email]).send()
    except Exception:
        r.delete(key, *([throttle] if throttle else []))
        raise
    log.info("mail sent", extra={"event_id": event.id, "kind": event.type, "user_id": str(user.id)})
    return 1
