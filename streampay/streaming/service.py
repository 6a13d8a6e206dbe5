"""Streaming sessions: start, heartbeat, stop, checkpoints and the end of a session.

The server's clock is the truth. A heartbeat proves play up to its arrival; billing runs
from start to the last proof of play (a stop within the timeout counts as one), never past
the money held for the session. PostgreSQL is written at start, once per window
(a checkpoint) and at the end; a heartbeat in between touches only Redis.
"""

from __future__ import annotations

import json
import logging
import uuid

from flask import current_app
from sqlalchemy import func, select

from streampay import clock, money
from streampay.content import service as catalogue
from streampay.content.models import ContentStatus
from streampay.dbtypes import utcnow
from streampay.errors import Conflict, DomainError, NotFound
from streampay.extensions import db, redis_client
from streampay.ledger import service as ledger
from streampay.ledger.models import AccountKind
from streampay.streaming import meter
from streampay.streaming.billing import charge_for, fee_for, ms_affordable
from streampay.streaming.models import EndReason, SessionStatus, StreamSession
from streampay.users.models import User

log = logging.getLogger(__name__)


class SessionGone(DomainError):
    status, code = 409, "session_not_active"


def _cfg(name: str) -> int:
    return current_app.config[name]


def _window_ms() -> int:
    return _cfg("STREAM_WINDOW_SECONDS") * 1000


def _timeout_ms() -> int:
    return _cfg("HEARTBEAT_TIMEOUT_SECONDS") * 1000


def _cap_end(session: StreamSession) -> int | None:
    if session.max_spend is None:
        return None
    return ms_affordable(session.max_spend, session.price_per_second)


def _extend(session: StreamSession, wallet, from_ms: int) -> None:
    """Hold money for the next window after `from_ms`, as far as the wallet and the cap allow."""
    wallet = ledger.lock(wallet)
    ledger.hold(wallet, -session.held)
    session.held = 0
    available = wallet.balance - wallet.held
    end = from_ms + _window_ms()
    end = min(end, ms_affordable(session.charged + available, session.price_per_second))
    cap = _cap_end(session)
    if cap is not None:
        end = min(end, cap)
    end = max(end, session.window_end_ms, session.billed_ms)
    session.held = charge_for(end, session.price_per_second) - session.charged
    session.window_end_ms = end
    ledger.hold(wallet, session.held)


def start(viewer: User, content_id: uuid.UUID, max_spend: int | None = None) -> dict:
    content = catalogue.load(content_id, viewer)  # what this viewer may see, else NotFound
    if content.status is not ContentStatus.READY:
        raise Conflict("This content is not ready to play yet.", {"content_id": [content.status.value]})
    active = db.session.scalar(
        select(func.count())
        .select_from(StreamSession)
        .where(StreamSession.viewer_id == viewer.id, StreamSession.status == SessionStatus.ACTIVE)
    )
    if active >= _cfg("MAX_SESSIONS_PER_VIEWER"):
        raise Conflict(f"At most {_cfg('MAX_SESSIONS_PER_VIEWER')} streams at once; stop one first.")
    now = clock.now_ms()
    session = StreamSession(
        id=uuid.uuid4(),
        viewer_id=viewer.id,
        content_id=content.id,
        creator_id=content.creator_id,
        price_per_second=content.price_per_second,
        fee_bps=_cfg("PLATFORM_FEE_BPS"),
        max_spend=max_spend,
        started_ms=now,
        billed_ms=0,
        charged=0,
        fee=0,
        checkpoints=0,
        window_end_ms=0,
        held=0,
    )
    wallet = ledger.wallet(viewer.id)
    db.session.add(session)
    _extend(session, wallet, 0)
    minimum = min(_cfg("STREAM_MIN_SECONDS") * 1000, _cap_end(session) or _window_ms())
    if session.window_end_ms < minimum or session.window_end_ms <= 0:
        db.session.rollback()
        raise ledger.InsufficientFunds(
            f"The balance does not cover the first {_cfg('STREAM_MIN_SECONDS')} seconds of this content."
        )
    db.session.commit()
    wallet = ledger.wallet(viewer.id)
    meter.put(
        str(session.id),
        viewer=str(viewer.id),
        started=now,
        last_hb=now,
        window_end=session.window_end_ms,
        final=0,
        price=session.price_per_second,
        balance_at_cp=wallet.balance,
        charged_at_cp=0,
        low_sent=0,
    )
    _maybe_warn_low(session, wallet)
    return {
        "session_id": str(session.id),
        "price_per_second": money.format(session.price_per_second),
        "balance": money.format(wallet.balance),
    }


def _settle(session: StreamSession, billed_ms: int) -> None:
    """Post the difference between what `billed_ms` costs in total and what was already posted."""
    billed_ms = min(max(billed_ms, session.billed_ms), session.window_end_ms)
    total = charge_for(billed_ms, session.price_per_second)
    total_fee = fee_for(total, session.fee_bps)
    charge, fee = total - session.charged, total_fee - session.fee
    session.checkpoints += 1
    if charge > 0:
        wallet = ledger.wallet(session.viewer_id)
        # The held money is what pays: release it first, so the wallet stays covered throughout.
        ledger.hold(wallet, -charge)
        session.held -= charge
        ledger.post(
            [
                ledger.Leg(wallet, -charge),
                ledger.Leg(ledger.earnings(session.creator_id), charge - fee),
                ledger.Leg(ledger.platform(AccountKind.PLATFORM_FEES), fee),
            ],
            idempotency_key=f"stream:{session.id}:{session.checkpoints}",
            kind="charge",
            details={
                "session_id": str(session.id),
                "content_id": str(session.content_id),
                "checkpoint": session.checkpoints,
                "billed_ms": billed_ms,
            },
            commit=False,
        )
    session.billed_ms, session.charged, session.fee = billed_ms, total, total_fee


def _locked(session_id) -> StreamSession | None:
    return db.session.scalars(
        select(StreamSession)
        .where(StreamSession.id == session_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()


def checkpoint(session_id: str, billed_ms: int) -> StreamSession | None:
    """Settle what was watched and hold the next window (once per window, idempotent)."""
    session = _locked(uuid.UUID(session_id))
    if session is None or session.status is not SessionStatus.ACTIVE or billed_ms <= session.billed_ms:
        db.session.rollback()
        return session
    old_end = session.window_end_ms
    _settle(session, billed_ms)
    wallet = ledger.wallet(session.viewer_id)
    _extend(session, wallet, session.billed_ms)
    db.session.commit()
    wallet = ledger.wallet(session.viewer_id)
    meter.put(
        session_id,
        window_end=session.window_end_ms,
        final=int(session.window_end_ms <= old_end),
        balance_at_cp=wallet.balance,
        charged_at_cp=session.charged,
    )
    _maybe_warn_low(session, wallet)
    return session


def end(session_id: str, end_ms: int, reason: EndReason) -> StreamSession | None:
    """Close a session at a server time: settle up to it (within what was held), release the rest."""
    session = _locked(uuid.UUID(session_id))
    if session is None or session.status is not SessionStatus.ACTIVE:
        db.session.rollback()
        meter.drop(session_id)
        return session
    _settle(session, max(0, end_ms - session.started_ms))
    wallet = ledger.lock(ledger.wallet(session.viewer_id))
    ledger.hold(wallet, -session.held)
    session.held = 0
    session.move_to(SessionStatus.ENDED)
    session.end_reason = reason.value
    session.ended_ms = session.started_ms + session.billed_ms
    session.ended_at = utcnow()
    db.session.commit()
    meter.drop(session_id)
    publish(session_id, "streamEnded", {"session_id": session_id, "reason": reason.value})
    return session


def publish(session_id: str, event: str, data: dict) -> None:
    """A push for the player, wherever its socket is: every web process hears it through Redis."""
    redis_client().publish(meter.PUSH_CHANNEL, json.dumps({"session_id": session_id, "event": event, "data": data}))


def _maybe_warn_low(session: StreamSession, wallet) -> None:
    runway = (wallet.balance - wallet.held + session.held) // max(session.price_per_second, 1)
    if runway < _cfg("BALANCE_LOW_SECONDS"):
        live = meter.read(str(session.id))
        if live is not None and not live.get("low_sent"):
            meter.put(str(session.id), low_sent=1)
            publish(
                str(session.id),
                "balanceLow",
                {"session_id": str(session.id), "balance": money.format(wallet.balance), "runway_seconds": int(runway)},
            )


def _session_key(session_id: str) -> str:
    try:
        return str(uuid.UUID(session_id))
    except (ValueError, TypeError, AttributeError) as exc:
        raise NotFound("No such session.") from exc


def _owned_live(viewer: User, session_id: str) -> dict:
    live = meter.read(_session_key(session_id))
    if live is None or live["viewer"] != str(viewer.id):
        raise SessionGone("No such active session.")
    return live


def heartbeat(viewer: User, session_id: str) -> tuple[dict, EndReason | None]:
    """Returns the reply and, when the session ended on this heartbeat, why."""
    now = clock.now_ms()
    before = meter.beat(_session_key(session_id), str(viewer.id), now)
    if before is None:
        raise SessionGone("No such active session.")
    if now - before["last_hb"] > _timeout_ms():
        end(session_id, before["last_hb"], EndReason.TIMEOUT)
        raise SessionGone("The session timed out: no heartbeat within the timeout.")
    billed = now - before["started"]
    window_end, reason = before["window_end"], None
    if billed >= window_end - _cfg("CHECKPOINT_LEAD_SECONDS") * 1000 and not before["final"]:
        session = checkpoint(session_id, min(billed, window_end))
        if session is not None:
            window_end = session.window_end_ms
            before = {**before, **(meter.read(session_id) or {})}
    if billed >= window_end:
        session = db.session.get(StreamSession, uuid.UUID(session_id))
        cap = _cap_end(session) if session else None
        reason = EndReason.SPEND_CAP_REACHED if cap is not None and window_end >= cap else EndReason.INSUFFICIENT_FUNDS
        end(session_id, before["started"] + window_end, reason)
        billed = window_end
    charged = charge_for(min(billed, window_end), before["price"])
    balance = before["balance_at_cp"] - (charged - before["charged_at_cp"])
    return {
        "timestamp": now,
        "billed_seconds": min(billed, window_end) // 1000,
        "charged": money.format(charged),
        "balance": money.format(balance),
    }, reason


def stop(viewer: User, session_id: str) -> dict:
    live = _owned_live(viewer, session_id)
    now = clock.now_ms()
    within = now - live["last_hb"] <= _timeout_ms()
    session = end(session_id, now if within else live["last_hb"], EndReason.STOPPED if within else EndReason.TIMEOUT)
    return {"success": True, "duration": session.billed_ms // 1000, "charged": money.format(session.charged)}


def reap() -> int:
    """Close sessions whose heartbeats stopped, at their last heartbeat, wherever their socket was."""
    cutoff = clock.now_ms() - _timeout_ms()
    closed = 0
    for session_id in meter.silent_since(cutoff):
        live = meter.read(session_id)
        last = live["last_hb"] if live else None
        if last is None:
            session = db.session.get(StreamSession, uuid.UUID(session_id))
            last = session.started_ms + session.billed_ms if session else 0
        end(session_id, last, EndReason.TIMEOUT)
        closed += 1
    # Sessions whose live state vanished from Redis: close at what was already settled.
    stale = db.session.scalars(
        select(StreamSession.id).where(StreamSession.status == SessionStatus.ACTIVE, StreamSession.started_ms < cutoff)
    ).all()
    for sid in stale:
        if meter.read(str(sid)) is None:
            session = db.session.get(StreamSession, sid)
            end(str(sid), session.started_ms + session.billed_ms, EndReason.TIMEOUT)
            closed += 1
    return closed
