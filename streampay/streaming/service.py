"""Streaming sessions: start, heartbeat, stop, checkpoints and the end of a session.

The server's clock is the truth. A heartbeat proves play up to its arrival; billing runs
from start to the last proof of play (a stop within the timeout counts as one), never past
the money held for the session. PostgreSQL is written at start, once per window
(a checkpoint) and at the end; a heartbeat in between touches only Redis.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import threading
import uuid
from dataclasses import dataclass

import sqlalchemy.exc
from flask import Flask, current_app
from sqlalchemy import bindparam, func, insert, select

from streampay import clock, metrics, money
from streampay.content import service as catalogue
from streampay.content.models import Content, ContentStatus
from streampay.dbtypes import utcnow
from streampay.errors import Conflict, DomainError, NotFound
from streampay.extensions import db
from streampay.ledger import service as ledger
from streampay.ledger.models import Account, AccountKind
from streampay.streaming import events, meter
from streampay.streaming.billing import charge_for, fee_for, ms_affordable
from streampay.streaming.models import EndReason, SessionStatus, StreamSession, Usage
from streampay.users.models import User

log = logging.getLogger(__name__)

# The tables of the statements a start runs: Core statements, not the ORM's, on the path every player opens by.
_SESSIONS, _CONTENT = StreamSession.__table__, Content.__table__


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


def _extend(session: StreamSession, wallet, from_ms: int, paying: int = 0) -> None:
    """Hold money for the next window after `from_ms`, as far as the (locked) wallet and the cap allow."""
    _hold_to(session, wallet, from_ms + _window_ms(), paying)


def _hold_to(session: StreamSession, wallet, end: int, paying: int = 0) -> None:
    """Hold money for the session's billed time up to `end`, as far as the (locked) wallet and the cap allow.

    `paying` is the part of this session's hold that a charge posted next will take: it is released
    with the rest and is no longer available. One hold update moves the wallet from the old hold to
    the new, so the wallet stays covered at every statement.
    """
    # After the charge, what other sessions' holds leave: (balance - paying) - (held - session.held - paying).
    available = wallet.balance - wallet.held + session.held
    end = min(end, ms_affordable(session.charged + available, session.price_per_second))
    cap = _cap_end(session)
    if cap is not None:
        end = min(end, cap)
    if session.media_ms:  # billed time never runs past the end of the media
        end = min(end, session.media_ms)
    end = max(end, session.window_end_ms, session.billed_ms)
    new_hold = charge_for(end, session.price_per_second) - session.charged
    ledger.hold(wallet, new_hold - session.held - paying)
    session.held = new_hold
    session.window_end_ms = end


def start(viewer: User, content_id: uuid.UUID, max_spend: int | None = None) -> dict:
    # The wallet's row lock first: a viewer's starts queue one behind the other, so each counts the others.
    wallet = ledger.wallet(viewer.id, lock=True)
    content = _playable(content_id, viewer)
    if content.active >= _cfg("MAX_SESSIONS_PER_VIEWER"):
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
        media_ms=content.duration_ms,
        started_ms=now,
        billed_ms=0,
        charged=0,
        fee=0,
        checkpoints=0,
        window_end_ms=0,
        held=0,
        status=SessionStatus.ACTIVE,
        started_at=utcnow(),
    )
    _extend(session, wallet, 0)
    window = _window_ms()
    minimum = min(_cfg("STREAM_MIN_SECONDS") * 1000, _cap_end(session) or window, session.media_ms or window)
    if session.window_end_ms < minimum or session.window_end_ms <= 0:
        db.session.rollback()
        raise ledger.InsufficientFunds(
            f"The balance does not cover the first {_cfg('STREAM_MIN_SECONDS')} seconds of this content."
        )
    # After the hold, plain INSERTs: the ORM's unit of work cost a start a fifth of its CPU.
    db.session.execute(insert(_SESSIONS), {c.key: getattr(session, c.key) for c in _SESSIONS.columns})
    _record_usage(session, now, sessions=1)
    live = _Live.of(session, wallet)  # read before the commit expires them: no query after it
    viewer_id = str(viewer.id)  # ... the viewer's too: after it, a reload is a checkout and three round trips
    db.session.commit()
    metrics.SESSIONS_STARTED.inc()
    try:
        meter.create(
            live.session_id,
            viewer=viewer_id,
            started=now,
            last_hb=now,
            window_end=live.window_end,
            final=0,
            price=live.price,
            balance_at_cp=live.balance,
            charged_at_cp=0,
            low_sent=0,
        )
    except Exception:
        _never_ran(live.session_id, now)
        raise
    _maybe_warn_low(live)
    return {
        "session_id": live.session_id,
        "price_per_second": money.format(live.price),
        "balance": money.format(live.balance),
    }


def _never_ran(session_id: str, started_ms: int) -> None:
    """A session whose meter could not be made ends in this request, billed nothing: its whole hold goes back to
    the wallet in the transaction that ends it, rather than a timeout later by the reaper."""
    try:
        end(session_id, started_ms, EndReason.UNAVAILABLE, started_ms)
    except Exception:  # noqa: BLE001 (Redis, down, refuses end's clean-up after its commit; the reaper does it)
        with contextlib.suppress(Exception):
            db.session.rollback()
        log.warning("a start refused for Redis was ended in PostgreSQL only", extra={"session_id": session_id})


# Built once, with bind parameters: every startStream runs it.
_PLAYABLE = (
    select(
        _CONTENT,
        select(func.count())
        .select_from(_SESSIONS)
        .where(_SESSIONS.c.viewer_id == bindparam("viewer_id"), _SESSIONS.c.status == SessionStatus.ACTIVE)
        .scalar_subquery()
        .label("active"),
    )
    .where(_CONTENT.c.id == bindparam("content_id"))
    .with_for_update(read=True, of=_CONTENT)
)


def _playable(content_id: uuid.UUID, viewer: User):
    """The item's row, as this viewer may see it and ready, read under a share lock: a delete, unpublish or failure
    committing meanwhile either waits for this start's commit (and then ends the new session with the others) or is
    seen here. In the same statement, the viewer's active sessions: how many there are (the caller holds the
    wallet's lock, so another start of the viewer's waits for this one's commit). A plain row, not an ORM object:
    nothing here changes it."""
    row = db.session.execute(_PLAYABLE, {"content_id": content_id, "viewer_id": viewer.id}).one_or_none()
    if row is None or not catalogue.visible_to(row, viewer):
        db.session.rollback()
        raise NotFound("No such content.")
    if row.status is not ContentStatus.READY:
        db.session.rollback()
        raise Conflict("This content is not ready to play yet.", {"content_id": [row.status.value]})
    return row


@dataclass(frozen=True)
class _Parties:
    """The accounts a settlement moves money between, read in one query, the viewer's wallet under its row lock."""

    wallet: Account
    earnings: Account
    fees: Account

    @classmethod
    def of(cls, session: StreamSession) -> _Parties:
        return cls(
            *ledger.wallet_with(
                session.viewer_id, (AccountKind.CREATOR_EARNINGS, session.creator_id), (AccountKind.PLATFORM_FEES, None)
            )
        )


def _bill(session: StreamSession, wallet, billed_ms: int) -> tuple[int, int]:
    """Bill the session up to `billed_ms` (within what is held); returns the charge still to post and its fee.

    The held money pays: the charge leaves the session's hold, and `_post_charge` posts it. Proven play past the
    held window (its checkpoints came late: PostgreSQL away, settlements queued) is held first, as far as the
    (locked) wallet covers it: a late settlement is not a lack of money.
    """
    if billed_ms > session.window_end_ms:
        _hold_to(session, wallet, billed_ms)
    billed_ms = min(max(billed_ms, session.billed_ms), session.window_end_ms)
    total = charge_for(billed_ms, session.price_per_second)
    charge = total - session.charged
    total_fee = fee_for(total, session.fee_bps)
    fee = total_fee - session.fee
    session.checkpoints += 1
    session.held -= charge
    session.billed_ms, session.charged, session.fee = billed_ms, total, total_fee
    return charge, fee


def _record_usage(session: StreamSession, at_ms: int, **figures) -> None:
    """Append a row of the usage outbox (never updated) that the analytics rollups fold in."""
    row = {
        "at_ms": at_ms,
        "session_id": session.id,
        "content_id": session.content_id,
        "creator_id": session.creator_id,
        "viewer_id": session.viewer_id,
        "ended_ms": None,
        **{"sessions": 0, "watch_ms": 0, "gross": 0, "fee": 0, **figures},
    }
    db.session.execute(insert(Usage.__table__), row)


def _post_charge(
    session: StreamSession,
    parties: _Parties,
    charge: int,
    fee: int,
    watched_ms: int = 0,
    ended: bool = False,
    at_ms: int | None = None,
) -> None:
    """Post viewer -> creator (+ platform fee) for this checkpoint: last in its transaction, because the
    creator's earnings and the platform's fees are rows every session shares, locked until the commit."""
    at_ms = clock.now_ms() if at_ms is None else at_ms
    if charge > 0 or watched_ms > 0 or ended:
        ended_ms = session.billed_ms if ended else None
        _record_usage(session, at_ms, watch_ms=watched_ms, gross=charge, fee=fee, ended_ms=ended_ms)
    db.session.flush()  # the session's own row first, before the shared rows are locked
    if charge <= 0:
        return
    ledger.post(
        [
            ledger.Leg(parties.wallet, -charge),
            ledger.Leg(parties.earnings, charge - fee),
            ledger.Leg(parties.fees, fee),
        ],
        idempotency_key=f"stream:{session.id}:{session.checkpoints}",
        kind="charge",
        at=clock.as_datetime(at_ms),
        details={
            "session_id": str(session.id),
            "content_id": str(session.content_id),
            "checkpoint": session.checkpoints,
            "billed_ms": session.billed_ms,
        },
        commit=False,
    )


def _locked(session_id) -> StreamSession | None:
    return db.session.scalars(
        select(StreamSession)
        .where(StreamSession.id == session_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()


# Settlements at once in a process. Each one updates rows that every settlement shares (a creator's earnings, the
# platform's fees) and, in a gevent worker, holds their locks across other greenlets' turns: more at once would only
# queue on those locks in PostgreSQL, each holding a pooled connection that startStream needs.
SETTLEMENTS_AT_ONCE = 4


class NoTurnFree(Exception):
    """Every settlement turn of this process is taken, and the caller asked not to wait for one."""


def _few_at_once(settle):
    """Run `settle` once one of the process's SETTLEMENTS_AT_ONCE turns is free: waited for as long as a pooled
    connection is (DB_POOL_TIMEOUT), then `unavailable` as the pool's own timeout would be. With `wait=False`,
    NoTurnFree at once instead; with `wait` a number of seconds, NoTurnFree after that long."""

    @functools.wraps(settle)
    def gated(*args, wait: bool | float = True, **kwargs):
        turns = current_app.extensions.get("streampay.settlements")
        if turns is None:  # made in each process, after the fork
            turns = current_app.extensions["streampay.settlements"] = threading.BoundedSemaphore(SETTLEMENTS_AT_ONCE)
        if wait is True:
            timeout = current_app.config["SQLALCHEMY_ENGINE_OPTIONS"].get("pool_timeout", 5)
        else:
            timeout = float(wait)
        if not turns.acquire(timeout=timeout):
            if wait is not True:
                raise NoTurnFree
            raise sqlalchemy.exc.TimeoutError(f"no settlement turn free within {timeout} s")
        try:
            return settle(*args, **kwargs)
        finally:
            turns.release()

    return gated


@_few_at_once
def checkpoint(session_id: str, billed_ms: int) -> int | None:
    """Settle what was watched and hold the next window (once per window, idempotent).

    Returns where the session's held window now ends, or None for no such session.
    """
    session = _locked(uuid.UUID(session_id))
    if session is None or session.status is not SessionStatus.ACTIVE or billed_ms <= session.billed_ms:
        window_end = None if session is None else session.window_end_ms
        active = session is not None and session.status is SessionStatus.ACTIVE
        db.session.rollback()
        if active:  # settled already: the meter may have missed that checkpoint (Redis away as it ended)
            meter.update(session_id, window_end=window_end)
        return window_end
    old_end, billed_before = session.window_end_ms, session.billed_ms
    parties = _Parties.of(session)
    charge, fee = _bill(session, parties.wallet, billed_ms)
    _extend(session, parties.wallet, session.billed_ms, paying=charge)
    _post_charge(session, parties, charge, fee, session.billed_ms - billed_before)
    live = _Live.of(session, parties.wallet)
    db.session.commit()
    metrics.settled(charge)
    meter.update(
        session_id,
        window_end=live.window_end,
        final=int(live.window_end <= old_end),
        balance_at_cp=live.balance,
        charged_at_cp=live.charged,
    )
    _maybe_warn_low(live)
    return live.window_end


@dataclass(frozen=True)
class Closed:
    billed_ms: int
    charged: int


@_few_at_once
def end(session_id: str, end_ms: int, reason: EndReason, started_ms: int | None = None) -> Closed | None:
    """Close a session at a server time: settle up to it (within what was held), release the rest.

    Billed time runs from the meter's start (`started_ms`, read from the meter when not given), which a rebuild
    moves on past play that could not be proven; with no meter, nothing past the last checkpoint is billed.
    Returns what the session was billed in all, also when it had already ended; None for no such session.
    """
    if started_ms is None:
        live = meter.read(session_id)
        started_ms = live["started"] if live else None
    session = _locked(uuid.UUID(session_id))
    if session is None or session.status is not SessionStatus.ACTIVE:
        closed = None if session is None else Closed(session.billed_ms, session.charged)
        db.session.rollback()
        meter.drop(session_id)
        return closed
    parties = _Parties.of(session)
    billed_before = session.billed_ms
    billed_ms = max(0, end_ms - started_ms) if started_ms is not None else session.billed_ms
    charge, fee = _bill(session, parties.wallet, billed_ms)
    release = session.held + charge  # the whole hold: what the charge takes and the rest
    session.held = 0
    session.move_to(SessionStatus.ENDED)
    session.end_reason = reason.value
    session.ended_ms = session.started_ms + session.billed_ms
    at_ms = clock.now_ms()
    session.ended_at = clock.as_datetime(at_ms)  # the server's clock, as its usage row and charge have it
    ledger.hold(parties.wallet, -release)
    if reason is not EndReason.UNAVAILABLE:  # a refused start: nobody heard it began, nobody hears it ended
        events.session_ended(session)  # billed: its charge and fee are final; written before the shared rows lock
    _post_charge(session, parties, charge, fee, session.billed_ms - billed_before, ended=True, at_ms=at_ms)
    closed = Closed(session.billed_ms, session.charged)
    db.session.commit()
    metrics.settled(charge, ended=reason.value)
    meter.drop(session_id)
    publish(session_id, "streamEnded", {"session_id": session_id, "reason": reason.value})
    return closed


def publish(session_id: str, event: str, data: dict) -> None:
    """A push for the player, wherever its socket is: every web process hears it through Redis."""
    meter.publish(json.dumps({"session_id": session_id, "event": event, "data": data}))


@dataclass(frozen=True)
class _Live:
    """What the meter and the player need of a session and its wallet, read inside the transaction."""

    session_id: str
    price: int
    window_end: int
    charged: int
    balance: int
    runway: int  # whole seconds the wallet covers: what other sessions do not hold, plus this one's hold

    @classmethod
    def of(cls, session: StreamSession, wallet) -> _Live:
        spare = wallet.balance - wallet.held + session.held
        return cls(
            str(session.id),
            session.price_per_second,
            session.window_end_ms,
            session.charged,
            wallet.balance,
            spare // max(session.price_per_second, 1),
        )


def _maybe_warn_low(live: _Live) -> None:
    if live.runway < _cfg("BALANCE_LOW_SECONDS"):
        state = meter.read(live.session_id)
        if state is not None and not state.get("low_sent"):
            meter.update(live.session_id, low_sent=1)
            publish(
                live.session_id,
                "balanceLow",
                {"session_id": live.session_id, "balance": money.format(live.balance), "runway_seconds": live.runway},
            )
            events.balance_low(state["viewer"], live.session_id, live.balance, live.runway)
            db.session.commit()


def _session_key(session_id: str) -> str:
    try:
        return str(uuid.UUID(session_id))
    except (ValueError, TypeError, AttributeError) as exc:
        raise NotFound("No such session.") from exc


def _owned_live(viewer: User, session_id: str) -> dict:
    key = _session_key(session_id)
    live = meter.read(key) or revive(key, str(viewer.id))
    if live is None or live["viewer"] != str(viewer.id):
        raise SessionGone("No such active session.")
    return live


def revive(session_id: str, viewer_id: str | None = None, now: int | None = None) -> dict | None:
    """The meter of a session PostgreSQL still has as active, put back after Redis lost it (a restart without
    persistence, a flush); None if there is no such active session (of that viewer).

    What was settled is all that is proven: billing goes on, as of now, from the last checkpoint's billed time, so
    play between that checkpoint and now is not billed. A player that does not beat again is reaped a timeout
    later, billed nothing more.
    """
    session = db.session.get(StreamSession, uuid.UUID(session_id))
    if session is None or session.status is not SessionStatus.ACTIVE:
        db.session.rollback()
        return None
    if viewer_id is not None and str(session.viewer_id) != viewer_id:
        db.session.rollback()
        return None
    now = clock.now_ms() if now is None else now  # a heartbeat's own time: its billed time starts at 0, not below
    values = {
        "viewer": str(session.viewer_id),
        "started": now - session.billed_ms,
        "last_hb": now,
        "window_end": session.window_end_ms,
        "final": 0,
        "price": session.price_per_second,
        "balance_at_cp": ledger.wallet(session.viewer_id).balance,
        "charged_at_cp": session.charged,
        "low_sent": 0,
    }
    db.session.rollback()  # no Redis call inside a transaction
    if meter.revive(session_id, **values):
        # An end that committed while this was read must not leave a meter behind: look again now it exists.
        status = db.session.scalar(select(StreamSession.status).where(StreamSession.id == uuid.UUID(session_id)))
        db.session.rollback()
        if status is not SessionStatus.ACTIVE:
            meter.drop(session_id)
            return None
        log.warning(
            "meter rebuilt from PostgreSQL", extra={"session_id": session_id, "billed_ms": now - values["started"]}
        )
    return meter.read(session_id)


def heartbeat(viewer: User, session_id: str) -> tuple[dict, EndReason | None]:
    """Returns the reply and, when the session ended on this heartbeat, why."""
    now, cfg = clock.now_ms(), current_app.config  # read once: a heartbeat is the hottest path there is
    timeout_ms = cfg["HEARTBEAT_TIMEOUT_SECONDS"] * 1000
    key = _session_key(session_id)
    before = meter.beat(key, str(viewer.id), now, timeout_ms)
    if before is None:  # ended, not this viewer's, or its meter lost with Redis: then put back, and beat again
        if revive(key, str(viewer.id), now) is None:
            raise SessionGone("No such active session.")
        before = meter.beat(key, str(viewer.id), now, timeout_ms)
        if before is None:
            raise SessionGone("No such active session.")
    if now - before["last_hb"] > timeout_ms:
        end(session_id, before["last_hb"], EndReason.TIMEOUT, before["started"])
        raise SessionGone("The session timed out: no heartbeat within the timeout.")
    billed = now - before["started"]
    window_end, reason = before["window_end"], None
    if billed >= window_end - cfg["CHECKPOINT_LEAD_SECONDS"] * 1000 and not before["final"]:
        try:
            # Ahead of the window's end the play is still held: a busy process settles it on a later heartbeat
            # rather than keep this one waiting (settlements spread out instead of timing out together).
            held_until = checkpoint(session_id, billed, wait=billed >= window_end)
        except NoTurnFree:
            held_until = None
        if held_until is not None:
            window_end = held_until
            before = {**before, **(meter.read(session_id) or {})}
    if billed >= window_end:
        end(session_id, before["started"] + window_end, _why_the_window_ends(session_id, window_end), before["started"])
        billed = window_end
    charged = charge_for(min(billed, window_end), before["price"])
    balance = before["balance_at_cp"] - (charged - before["charged_at_cp"])
    return {
        "timestamp": now,
        "billed_seconds": min(billed, window_end) // 1000,
        "charged": money.format(charged),
        "balance": money.format(balance),
    }, reason


def _why_the_window_ends(session_id: str, window_end: int) -> EndReason:
    session = db.session.get(StreamSession, uuid.UUID(session_id))
    cap = _cap_end(session) if session else None
    if session is not None and session.media_ms and window_end >= session.media_ms:
        reason = EndReason.COMPLETED
    else:
        reason = EndReason.SPEND_CAP_REACHED if cap is not None and window_end >= cap else EndReason.INSUFFICIENT_FUNDS
    db.session.rollback()  # no pooled connection held while the end waits for its settlement turn
    return reason


def stop(viewer: User, session_id: str) -> dict:
    live = _owned_live(viewer, session_id)
    now = clock.now_ms()
    within = now - live["last_hb"] <= _timeout_ms()
    end_ms, reason = (now, EndReason.STOPPED) if within else (live["last_hb"], EndReason.TIMEOUT)
    try:
        closed = end(session_id, end_ms, reason, live["started"], wait=_cfg("STOP_SETTLE_WAIT_MS") / 1000)
    except NoTurnFree:
        closed = _end_later(session_id, live, end_ms, reason)
    return {"success": True, "duration": closed.billed_ms // 1000, "charged": money.format(closed.charged)}


def _end_later(session_id: str, live: dict, end_ms: int, reason: EndReason) -> Closed:
    """Every settlement turn of this process stayed taken (a burst of stops on rows every settlement shares): the
    session's end is fixed now, and a job settles it on the worker, once (one job id per session).

    The bill is what the meter says: billed to `end_ms`, within the window already held (play past it, proven only
    when checkpoints came late, is not billed), which is what the job's settlement posts. The stop is stamped on the
    meter as the session's last proof of play, so a reaper that ends it before the job does bills the same.
    """
    from rq import Retry  # RQ loads when a stop has to wait, not with every `flask` command

    from streampay import jobs

    end_ms = min(end_ms, live["started"] + live["window_end"])
    if end_ms > live["last_hb"]:
        meter.beat(session_id, live["viewer"], end_ms, _timeout_ms())
    jobs.enqueue(
        "streampay.streaming.jobs.end_stopped",
        session_id,
        end_ms,
        reason.value,
        live["started"],
        job_id=f"end-session-{session_id}",
        retry=Retry(max=5, interval=[1, 5, 15, 60, 300]),
    )
    metrics.STOPS_SETTLED_LATER.inc()
    billed = max(0, end_ms - live["started"])
    return Closed(billed, charge_for(billed, live["price"]))


def held_by_active_sessions(_sender=None, **_) -> dict:
    """For `ledger check`: what each viewer's active sessions hold, by viewer id."""
    return dict(
        db.session.execute(
            select(StreamSession.viewer_id, func.sum(StreamSession.held))
            .where(StreamSession.status == SessionStatus.ACTIVE)
            .group_by(StreamSession.viewer_id)
        ).all()
    )


def has_active_session(content: Content, viewer: User, **_) -> bool:
    """A viewer may play an item's bytes while one of their sessions on it is active."""
    playing = db.session.scalar(
        select(StreamSession.id)
        .where(
            StreamSession.viewer_id == viewer.id,
            StreamSession.content_id == content.id,
            StreamSession.status == SessionStatus.ACTIVE,
        )
        .limit(1)
    )
    return playing is not None


def end_for_content(content_id: uuid.UUID, **_) -> int:
    """The item left play: its active sessions end now, billed to this moment (or the last heartbeat, if longer
    ago than the timeout), whoever plays them; returns how many."""
    now, timeout = clock.now_ms(), _timeout_ms()
    ids = db.session.scalars(
        select(StreamSession.id).where(
            StreamSession.content_id == content_id, StreamSession.status == SessionStatus.ACTIVE
        )
    ).all()
    db.session.rollback()
    for sid in ids:
        live = meter.read(str(sid))
        if live is not None:
            proof = now if now - live["last_hb"] <= timeout else live["last_hb"]
        else:  # the meter is gone: what was settled is all that can be proven
            session = db.session.get(StreamSession, sid)
            proof = session.started_ms + session.billed_ms
            db.session.rollback()
        end(str(sid), proof, EndReason.CONTENT_UNAVAILABLE)
    return len(ids)


def init_app(app: Flask) -> None:
    """Answer the other domains' signals: what sessions hold (`ledger check`), whether a viewer may play an item,
    and an item leaving play. Connected here, not where the routes are, so a `flask` command has them too."""
    ledger.holds_claimed.connect(held_by_active_sessions)
    catalogue.playback_allowed.connect(has_active_session)
    catalogue.withdrawn.connect(end_for_content)


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
        end(session_id, last, EndReason.TIMEOUT, live["started"] if live else None)
        closed += 1
    # Sessions whose meter Redis lost: put back, billing on from their last checkpoint. A player that beats again
    # goes on; one that does not is reaped a timeout later, billed nothing past that checkpoint.
    stale = db.session.scalars(
        select(StreamSession.id).where(StreamSession.status == SessionStatus.ACTIVE, StreamSession.started_ms < cutoff)
    ).all()
    db.session.rollback()
    for sid in stale:
        if meter.read(str(sid)) is None:
            revive(str(sid))
    return closed


def last_proof_of_play(session_id: str) -> int:
    """The server time of the session's last heartbeat; without its meter, where it was last settled."""
    live = meter.read(session_id)
    if live is not None:
        return live["last_hb"]
    session = db.session.get(StreamSession, uuid.UUID(session_id))
    return session.started_ms + session.billed_ms if session else 0


def end_revoked(session_id: str) -> Closed | None:
    """End a session whose viewer lost access (signed out, deactivated): billed to its last proof of play."""
    return end(session_id, last_proof_of_play(session_id), EndReason.REVOKED)


def end_all_revoked(viewer_id: uuid.UUID) -> int:
    """End every active session of a viewer who lost access, wherever its socket is."""
    ids = db.session.scalars(
        select(StreamSession.id).where(
            StreamSession.viewer_id == viewer_id, StreamSession.status == SessionStatus.ACTIVE
        )
    ).all()
    db.session.rollback()
    for session_id in ids:
        end_revoked(str(session_id))
    return len(ids)
