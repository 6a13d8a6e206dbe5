"""When access is taken away, the streams it paid for end and the sockets it opened close.

Heard from `users.signals.access_revoked`, after the commit that revoked: a deactivation or role
change ends every active session of the user here and now (wherever its socket is); then one
`revoke` push tells every web process, whose hub ends the sessions of the sockets it holds for
that sign-in (or user), sends `error` `unauthorized` and closes them.
"""

from __future__ import annotations

import logging
import uuid

from flask import Flask
from redis.exceptions import RedisError

from streampay.streaming import service
from streampay.users import signals

log = logging.getLogger(__name__)


def _on_access_revoked(_app: Flask, *, user_id: str, sign_in: str | None, why: str) -> None:
    try:
        if sign_in is None:
            service.end_all_revoked(uuid.UUID(user_id))
        service.publish("", "revoke", {"user_id": user_id, "sign_in": sign_in, "why": why})
    except (RedisError, OSError):
        # The revocation itself is committed: tokens are refused, startStream too; the reaper ends the streams.
        log.warning("could not close the revoked sockets now (Redis unreachable)", extra={"user_id": user_id})


def init_app(app: Flask) -> None:
    signals.access_revoked.connect(_on_access_revoked)
