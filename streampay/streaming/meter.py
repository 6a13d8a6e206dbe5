"""The live side of a session in Redis: one hash per session and one sorted set of last heartbeats.

A heartbeat is one O(1) script call, pipelined with the process's other heartbeats, and never touches
PostgreSQL.
"""

from __future__ import annotations

from flask import current_app

from streampay.extensions import redis_client
from streampay.streaming.pipeline import ScriptPipeline

ACTIVE = "meter:active"
PUSH_CHANNEL = "streampay:push"
FIELDS = ("viewer", "started", "last_hb", "window_end", "final", "price", "balance_at_cp", "charged_at_cp", "low_sent")


def _key(session_id: str) -> str:
    return f"meter:{session_id}"


def put(session_id: str, **values) -> None:
    pipe = redis_client().pipeline()
    pipe.hset(_key(session_id), mapping={k: str(v) for k, v in values.items()})
    if "last_hb" in values:
        pipe.zadd(ACTIVE, {session_id: int(values["last_hb"])})
    pipe.execute()


def read(session_id: str) -> dict | None:
    raw = redis_client().hgetall(_key(session_id))
    return _decode(raw) if raw else None


def _decode(raw: dict) -> dict:
    out = {}
    for k, v in raw.items():
        k, v = k.decode(), v.decode()
        out[k] = v if k == "viewer" else int(v)
    return out


# One atomic call: read what a heartbeat needs and stamp it, only for the session's own viewer.
BEAT_FIELDS = ("started", "last_hb", "window_end", "final", "price", "balance_at_cp", "charged_at_cp")
_BEAT = """
local m = redis.call('HMGET', KEYS[1], 'viewer', {fields})
if m[1] ~= ARGV[3] then return false end
redis.call('HSET', KEYS[1], 'last_hb', ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
table.remove(m, 1)
return m
""".format(fields=", ".join(f"'{f}'" for f in BEAT_FIELDS))


def _beats() -> ScriptPipeline:
    app = current_app._get_current_object()
    beats = app.extensions.get("streampay.beats")
    if beats is None:
        beats = app.extensions["streampay.beats"] = ScriptPipeline(
            redis_client(), _BEAT, timeout=app.config["REDIS_POOL_TIMEOUT"]
        )
    return beats


def beat(session_id: str, viewer_id: str, now: int) -> dict | None:
    """Stamp a heartbeat; the meter as it was before it, or None for no live session of this viewer."""
    values = _beats()([_key(session_id), ACTIVE], [now, session_id, viewer_id])
    if not values:
        return None
    return dict(zip(BEAT_FIELDS, map(int, values), strict=True))


def drop(session_id: str) -> None:
    pipe = redis_client().pipeline()
    pipe.delete(_key(session_id))
    pipe.zrem(ACTIVE, session_id)
    pipe.execute()


def silent_since(cutoff_ms: int, limit: int = 500) -> list[str]:
    return [s.decode() for s in redis_client().zrangebyscore(ACTIVE, "-inf", cutoff_ms, start=0, num=limit)]
