"""When access is taken away, the streams it paid for end and the sockets it opened close.

Heard from `users.signals.access_revoked`, after the commit that revoked: a deactivation or role
change ends every active session of the user here and now (wherever its socket is); then one
`revoke` push tells every web process, whose hub ends the sessions of the sockets it holds for
that sign-in (or user), sends `error` `unauthorized` and closes them.

A push sent while Redis was away reaches nobody: each web process's listener, once subscribed again, checks
the sockets it holds against PostgreSQL (`lost_access`) and closes those whose access went meanwhile; until
that check is done, a heartbeat checks its own socket first.
"""

from __future__ import annotations

import logging
import uuid

from flask import Flask

from streampay.auth import tokens
from streampay.streaming import service
from streampay.users import signals

log = logging.getLogger(__name__)


def _on_access_revoked(_app: Flask, *, user_id: str, sign_in: str | None, why: str) -> None:
    from redis.exceptions import RedisError  # a command that revokes nobody does not load the Redis client

    try:
        if sign_in is None:
            service.end_all_revoked(uuid.UUID(user_id))
        service.publish("", "revoke", {"user_id": user_id, "sign_in": sign_in, "why": why})
    except (RedisError, OSError):
        # The revocation itself is committed: tokens are refused, startStream too; the reaper ends the streams.
        log.warning("could not close the revoked sockets now (Redis unreachable)", extra={"user_id": user_id})


def lost_access(players) -> list[tuple[object, str]]:
    """Of these sockets (each with the `user` and token `payload` it was opened with), those whose access went
    while no push could reach this process, with why: their sign-in revoked, their account deactivated or gone,
    or its role changed. One query a thousand sockets, in PostgreSQL, where revocations are recorded."""
    held = [(p, str(p.user.id), (p.payload or {}).get("fam")) for p in players if p.user is not None]
    if not held:
        return []
    now = tokens.standing({(user_id, family) for _, user_id, family in held})
    doomed = []
    for player, user_id, family in held:
        role, why = now[(user_id, family)]
        if why is None and role is None:
            why = "deactivated"
        elif why is None and role is not player.user.role:
            why = "role_changed"
        if why is not None:
            doomed.append((player, why))
    return doomed


def init_app(app: Flask) -> None:
    signals.access_revoked.connect(_on_access_revoked)
