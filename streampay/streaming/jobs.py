"""Streaming jobs: the reaper (periodic, see streampay/cron.py) and the settlement of a stop that could not wait."""

from __future__ import annotations

from streampay.extensions import db
from streampay.streaming import service
from streampay.streaming.models import EndReason


def reap() -> int:
    """Close and bill, at their last heartbeat, sessions whose player went silent."""
    try:
        return service.reap()
    finally:
        db.session.remove()


def end_stopped(session_id: str, end_ms: int, reason: str, started_ms: int) -> None:
    """Settle a stop that found every settlement turn of its web process taken (service._end_later): the session
    ends as the stop fixed it. Safe to run twice: an ended session is left as it is."""
    try:
        service.end(session_id, end_ms, EndReason(reason), started_ms)
    finally:
        db.session.remove()
