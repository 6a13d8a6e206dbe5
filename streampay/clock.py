"""The server's clock, the only truth for billing. Tests put their own in app.extensions."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from flask import current_app


def now_ms() -> int:
    clock = current_app.extensions.get("streampay.clock")
    return clock() if clock is not None else time.time_ns() // 1_000_000


def as_datetime(ms: int) -> datetime:
    """Server-clock milliseconds as an aware UTC datetime, exactly (no float on the way)."""
    return datetime.fromtimestamp(ms // 1000, UTC) + timedelta(milliseconds=ms % 1000)
