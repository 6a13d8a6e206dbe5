"""Session events for webhooks and mail, as the API shows the session; written in the caller's transaction."""

from __future__ import annotations

from streampay import money
from streampay.events import outbox
from streampay.streaming.models import StreamSession
from streampay.streaming.schemas import SessionSchema

# Built once: a schema per call copies its fields, and the copies hold each other (garbage for the collector).
_SESSION = SessionSchema()


def session_ended(session: StreamSession) -> None:
    """Heard by the viewer (what it cost) and the creator (what it earned)."""
    outbox.emit("session.ended", _SESSION.dump(session), session.viewer_id, session.creator_id)


def balance_low(viewer_id: str, session_id: str, balance: int, runway_seconds: int) -> None:
    data = {"user_id": viewer_id, "session_id": session_id, "balance": money.format(balance)}
    outbox.emit("balance.low", {**data, "runway_seconds": runway_seconds}, viewer_id)
