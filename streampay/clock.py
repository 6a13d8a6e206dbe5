"""The server's clock, the only truth for billing. Tests put their own in app.extensions."""

from __future__ import annotations

import time

from flask import current_app


def now_ms() -> int:
    clock = current_app.extensions.get("streampay.clock")
    return clock() if clock is not None else time.time_ns() // 1_000_000
