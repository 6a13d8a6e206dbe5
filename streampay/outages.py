"""A dependency that does not answer (down, restarting, a connection killed mid-request, a pool with no connection
to give): the request is refused with 503 and Retry-After, never a 500, and the next one after it returns works.

Apart from streampay.errors because it imports the Redis client, which a `flask` command that never touches Redis
does not load (bench/startup.py).
"""

from __future__ import annotations

import logging

import redis
import sqlalchemy.exc
from flask import Flask

from streampay.errors import error_body

log = logging.getLogger(__name__)

DEPENDENCY_DOWN = (
    redis.ConnectionError,
    redis.TimeoutError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
)
RETRY_AFTER_SECONDS = 5


def dependency_of(exc: BaseException) -> str:
    return "redis" if isinstance(exc, redis.RedisError) else "database"


def _first_line(exc: BaseException) -> str:
    """What the driver said, without the statement and parameters SQLAlchemy appends (they may hold user data)."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0][:200] if lines else ""


def unavailable_body(exc: BaseException) -> dict:
    name = dependency_of(exc)
    log.warning("%s unavailable: %s: %s", name, exc.__class__.__name__, _first_line(exc))
    return error_body(
        503,
        "Service Unavailable",
        f"The {name} does not answer right now; retry in a few seconds.",
        {"dependency": name},
    )


def init_app(app: Flask) -> None:
    for kind in DEPENDENCY_DOWN:

        @app.errorhandler(kind)
        def dependency_down(exc: Exception):
            return unavailable_body(exc), 503, {"Retry-After": str(RETRY_AFTER_SECONDS)}
