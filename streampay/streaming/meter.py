"""The live side of a session in Redis: one hash per session and one sorted set of last heartbeats.

A heartbeat is one O(1) script call and never touches PostgreSQL. Everything here goes through the
process's one shared, pipelined connection (`pipeline.SharedConnection`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from flask import current_app

from streampay.extensions import redis_client

if TYPE_CHECKING:
    from streampay.streaming.pipeline import SharedConnection

ACTIVE = "meter:active"
PUSH_CHANNEL = "streampay:push"  # and the database number: pub/sub is server-wide, keys are per database


def _key(session_id: str) -> str:
    return f"meter:{session_id}"


def _process_connection() -> tuple[SharedConnection, Callable[[list, list], object]]:
    """The app's shared connection, made on first use in each process, and the heartbeat script on it."""
    found = current_app.extensions.get("streampay.meter")
    if found is None:
        # Imported here: it loads the Redis client, which a `flask` command that meters nothing does not need.
        from streampay.streaming.pipeline import SharedConnection

        cfg = current_app.config
        conn = SharedConnection(
            redis_client(),
            cfg["METER_TIMEOUT_MS"] / 1000,
            strained_after=cfg["WS_ADMIT_MAX_METER_WAIT_MS"] / 1000,
            strained_share=cfg["WS_ADMIT_MAX_SLOW_METER_PERCENT"] / 100,
        )
        found = current_app.extensions["streampay.meter"] = (conn, conn.script(_BEAT))
    return found


def shared() -> SharedConnection:
    return _process_connection()[0]


def _fields(values: dict) -> list[str]:
    return [str(part) for pair in values.items() for part in pair]


def create(session_id: str, **values) -> None:
    """A new session's meter: every field, and its place among the active ones."""
    shared().transaction(("HSET", _key(session_id), *_fields(values)), ("ZADD", ACTIVE, values["last_hb"], session_id))


# Change a live meter, and only a live one: a write that lands after Redis lost the meter (a settlement that
# committed across a restart) or after the session ended must not leave a husk with no viewer and no last
# heartbeat, which no heartbeat could use, no rebuild would replace, and the reaper would never find.
_UPDATE = """
if redis.call('HEXISTS', KEYS[1], 'viewer') == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""


def update(session_id: str, **values) -> bool:
    """Set fields of the session's meter if it has one; False if it has none (ended, or lost with Redis)."""
    return bool(_script("update", _UPDATE)([_key(session_id)], _fields(values)))


def read(session_id: str) -> dict | None:
    flat = shared().execute(("HGETALL", _key(session_id)))[0]
    pairs = flat.items() if isinstance(flat, dict) else zip(flat[::2], flat[1::2], strict=True)
    found = {k.decode(): v.decode() if k == b"viewer" else int(v) for k, v in pairs}
    return found if "viewer" in found else None  # a husk (written by an older release) is no meter


# One atomic call: read what a heartbeat needs and, only for the session's own viewer and only within the
# timeout of the last one, stamp it. A heartbeat after a longer silence leaves the last proof of play as it was,
# so the session ends there, and sending the call twice (after a lost connection) changes nothing.
BEAT_FIELDS = ("started", "last_hb", "window_end", "final", "price", "balance_at_cp", "charged_at_cp")
_BEAT = """
local m = redis.call('HMGET', KEYS[1], 'viewer', {fields})
if m[1] ~= ARGV[3] then return false end
table.remove(m, 1)
if tonumber(ARGV[1]) - tonumber(m[2]) <= tonumber(ARGV[4]) then
  redis.call('HSET', KEYS[1], 'last_hb', ARGV[1])
  redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
end
return m
""".format(fields=", ".join(f"'{f}'" for f in BEAT_FIELDS))


def beat(session_id: str, viewer_id: str, now: int, timeout_ms: int) -> dict | None:
    """Stamp a heartbeat; the meter as it was before it, or None for no live session of this viewer."""
    values = _process_connection()[1]([_key(session_id), ACTIVE], [now, session_id, viewer_id, timeout_ms])
    if not values:
        return None
    return dict(zip(BEAT_FIELDS, map(int, values), strict=True))


# Put back a meter Redis lost, unless one is there already: whoever rebuilds first, every caller reads the same one.
_REVIVE = """
if redis.call('HEXISTS', KEYS[1], 'viewer') == 1 then return 0 end
redis.call('DEL', KEYS[1])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
return 1
"""


def revive(session_id: str, **values) -> bool:
    """Create the session's meter with `values` if it has none; True if this call created it."""
    return bool(
        _script("revive", _REVIVE)([_key(session_id), ACTIVE], [values["last_hb"], session_id, *_fields(values)])
    )


def _script(name: str, source: str):
    """A script on the shared connection, registered once per process."""
    key = f"streampay.meter.{name}"
    script = current_app.extensions.get(key)
    if script is None:
        script = current_app.extensions[key] = shared().script(source)
    return script


def drop(session_id: str) -> None:
    shared().transaction(("DEL", _key(session_id)), ("ZREM", ACTIVE, session_id))


def push_channel() -> str:
    """The channel of this app's pushes. Pub/sub ignores the database number: deployments (or test runs) that share a
    Redis server on databases of their own would otherwise hear each other's pushes."""
    return f"{PUSH_CHANNEL}:{redis_client().connection_pool.connection_kwargs.get('db', 0)}"


def publish(message: str) -> None:
    """To every web process's push listener."""
    shared().execute(("PUBLISH", push_channel(), message))


def silent_since(cutoff_ms: int, limit: int = 500) -> list[str]:
    return [s.decode() for s in redis_client().zrangebyscore(ACTIVE, "-inf", cutoff_ms, start=0, num=limit)]
