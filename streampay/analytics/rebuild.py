"""Rebuild the rollups from the ledger and the sessions: history from before the usage outbox, or a repair.

The rollups from the start of a UTC month on are dropped, the usage outbox is written again from what
the ledger and the sessions hold (each session's start, each charge with the billed time it added, each
end), and the real fold folds it. Run twice, it gives the same rollups.

Where the ledger has no posting, the sessions say what the outbox said: a checkpoint that charged nothing
(a price of zero, or less than a stroop since the last one) posts nothing, so its watch time is counted
at the next charge or at the session's end.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, date, datetime

from sqlalchemy import case, delete, func, insert, or_, select, text, update

from streampay.analytics import fold
from streampay.analytics.models import RetentionBucket, Rollup, ViewerBucket, ViewerDays
from streampay.extensions import db
from streampay.ledger.models import Account, AccountKind, Entry, Transaction
from streampay.streaming.models import SessionStatus, StreamSession, Usage

CHUNK = 5_000


def month_start(day: date) -> datetime:
    return datetime(day.year, day.month, 1, tzinfo=UTC)


@contextmanager
def _folds_held():
    """On PostgreSQL, no fold runs meanwhile (the fold takes this lock shared), and the rebuild reads one
    snapshot: a checkpoint committed after it keeps its outbox row, and is not read from the ledger."""
    if db.engine.dialect.name != "postgresql":
        yield
        return
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as lock:
        lock.execute(text("SELECT pg_advisory_lock(:k)"), {"k": fold.LOCK})
        try:
            db.session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            yield
        finally:
            lock.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": fold.LOCK})


def _drop(cut: datetime | None) -> None:
    """Every rollup row from `cut` (a UTC month's start) on: each grain's buckets there begin at or after it."""
    since = int(cut.timestamp()) if cut else None
    for model in (Rollup, ViewerBucket, RetentionBucket):
        db.session.execute(delete(model).where(model.bucket >= since) if cut else delete(model))
    db.session.execute(delete(Usage).where(Usage.at_ms >= since * 1000) if cut else delete(Usage))
    if cut is None:
        db.session.execute(delete(ViewerDays))
        return
    db.session.execute(delete(ViewerDays).where(ViewerDays.year > cut.year))
    later = {f"m{m}": 0 for m in range(cut.month, 13)}
    db.session.execute(update(ViewerDays).where(ViewerDays.year == cut.year).values(**later))


def _sessions(cut_ms: int, cut: datetime | None):
    """Sessions that did something from the cut on: started, charged or ended (so are running or ended since)."""
    stmt = select(
        StreamSession.id,
        StreamSession.content_id,
        StreamSession.creator_id,
        StreamSession.viewer_id,
        StreamSession.started_ms,
        StreamSession.status,
        StreamSession.checkpoints,
        StreamSession.billed_ms,
        StreamSession.ended_at,
    )
    if cut is not None:
        stmt = stmt.where(
            or_(
                StreamSession.started_ms >= cut_ms,
                StreamSession.status == SessionStatus.ACTIVE,
                StreamSession.ended_at >= cut,
            )
        )
    return {row[0]: row for row in db.session.execute(stmt)}


def _charges():
    """Every charge: when, whose session, its checkpoint and billed time, and its gross and fee, from the
    entries; in the order each session posted them."""
    gross = func.sum(case((Account.kind == AccountKind.VIEWER_WALLET, -Entry.amount), else_=0))
    fee = func.sum(case((Account.kind == AccountKind.PLATFORM_FEES, Entry.amount), else_=0))
    session = Transaction.details["session_id"].as_string()
    return db.session.execute(
        select(
            Transaction.created_at,
            session,
            Transaction.details["checkpoint"].as_integer(),
            Transaction.details["billed_ms"].as_integer(),
            gross,
            fee,
        )
        .join(Entry, Entry.transaction_id == Transaction.id)
        .join(Account, Account.id == Entry.account_id)
        .where(Transaction.kind == "charge")
        .group_by(Transaction.id)
        .order_by(Transaction.id)
        .execution_options(yield_per=CHUNK)
    )


def _ms(moment: datetime) -> int:
    return int(moment.timestamp()) * 1000 + moment.microsecond // 1000


def _usage_rows(cut_ms: int, cut: datetime | None):
    """The outbox rows of everything from the cut on, as the streaming service wrote them."""
    sessions = _sessions(cut_ms, cut)
    by_key = {str(sid): sid for sid in sessions}
    billed: dict = {}
    last_checkpoint: dict = {}
    for at, key, checkpoint, billed_ms, gross, fee in _charges():
        sid = by_key.get(key)
        before = billed.get(key, 0)
        billed[key] = billed_ms
        if sid is None:
            continue
        _, content, creator, viewer, _, status, checkpoints, total, _ = sessions[sid]
        last_checkpoint[sid] = checkpoint
        ends = status is SessionStatus.ENDED and checkpoint == checkpoints
        if (at_ms := _ms(at)) >= cut_ms:
            yield (at_ms, sid, content, creator, viewer, 0, billed_ms - before, gross, fee, total if ends else None)
    for sid, (_, content, creator, viewer, started_ms, status, checkpoints, total, ended_at) in sessions.items():
        if started_ms >= cut_ms:
            yield (started_ms, sid, content, creator, viewer, 1, 0, 0, 0, None)
        if status is SessionStatus.ENDED and last_checkpoint.get(sid) != checkpoints and _ms(ended_at) >= cut_ms:
            watched = total - billed.get(str(sid), 0)
            yield (_ms(ended_at), sid, content, creator, viewer, 0, watched, 0, 0, total)


COLUMNS = ("at_ms", "session_id", "content_id", "creator_id", "viewer_id", "sessions", "watch_ms", "gross", "fee",
           "ended_ms")  # fmt: skip


def rebuild(since: date | None = None) -> dict:
    """Drop the rollups from the start of `since`'s UTC month (all of them without it), write the outbox of
    that history again from the ledger and the sessions, and fold it. Returns what was done."""
    cut = month_start(since) if since else None
    cut_ms = _ms(cut) if cut else 0
    written = 0
    with _folds_held():
        _drop(cut)
        batch = []
        for row in _usage_rows(cut_ms, cut):
            batch.append(dict(zip(COLUMNS, row, strict=True)))
            if len(batch) == CHUNK:
                db.session.execute(insert(Usage), batch)
                written, batch = written + len(batch), []
        if batch:
            db.session.execute(insert(Usage), batch)
            written += len(batch)
        db.session.commit()
    folded = fold.fold()
    return {"from": cut.date().isoformat() if cut else None, "usage_rows": written, "folded": folded}
