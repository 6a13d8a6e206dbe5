"""Periodic streaming jobs (see streampay/cron.py)."""

from __future__ import annotations

from streampay.extensions import db
from streampay.streaming import service


def reap() -> int:
    """Close and bill, at their last heartbeat, sessions whose player went silent."""
    try:
        return service.reap()
    finally:
        db.session.remove()
