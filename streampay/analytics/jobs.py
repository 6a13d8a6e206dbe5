"""The periodic fold of the usage outbox into the rollups (see streampay/cron.py)."""

from __future__ import annotations

from streampay.analytics import fold as rollups
from streampay.extensions import db


def fold() -> int:
    """Fold every usage row written so far; safe to run twice, or two at once."""
    try:
        return rollups.fold()
    finally:
        db.session.remove()
