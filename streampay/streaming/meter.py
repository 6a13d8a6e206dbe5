"""The live side of a session in Redis: one hash per session and one sorted set of last heartbeats.

A heartbeat is one pipelined round trip of O(1) commands and never touches PostgreSQL.
"""

from __future__ import annotations

from streampay.extensions import redis_client

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


# One atomic round trip: read the meter and stamp the heartbeat, only for the session's own viewer.
_BEAT = """
local viewer = redis.call('HGET', KEYS[1], 'viewer')
if not viewer or viewer ~= ARGV[3] then return false end
local before = redis.call('HGETALL', KEYS[1])
redis.call('HSET', KEYS[1], 'last_hb', ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
return before
"""


def beat(session_id: str, viewer_id: str, now: int) -> dict | None:
    """Stamp a heartbeat; the meter as it was before it, or None for no live session of this viewer."""
    client = redis_client()
    script = client.__dict__.get("_streampay_beat")
    if script is None:
        script = client.__dict__["_streampay_beat"] = client.register_script(_BEAT)
    flat = script(keys=[_key(session_id), ACTIVE], args=[now, session_id, viewer_id])
    if not flat:
        return None
    return _decode(dict(zip(flat[::2], flat[1::2], strict=True)))


def drop(session_id: str) -> None:
    pipe = redis_client().pipeline()
    pipe.delete(_key(session_id))
    pipe.zrem(ACTIVE, session_id)
    pipe.execute()


def silent_since(cutoff_ms: int, limit: int = 500) -> list[str]:
    return [s.decode() for s in redis_client().zrangebyscore(ACTIVE, "-inf", cutoff_ms, start=0, num=limit)]
