"""Figures that do not pass through the usage outbox: payouts, deposits, new users, balances now.

Each is read from the table written in the same transaction as its ledger posting, by an index on
its time; these rows are few next to charges (a payout per creator per run, a deposit per payment).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date

from sqlalchemy import func, select

from streampay.analytics.queries import Period
from streampay.extensions import db
from streampay.ledger import service as ledger
from streampay.ledger.models import Account, AccountKind
from streampay.stellar.models import Deposit, DepositStatus, Payout, PayoutStatus
from streampay.streaming.models import SessionStatus, StreamSession
from streampay.users.models import User


def _per_day(rows, period: Period) -> dict[date, int]:
    out: dict[date, int] = defaultdict(int)
    for moment, amount in rows:
        out[period.local_day(moment)] += amount
    return dict(out)


def paid_out(period: Period, creator_id=None) -> dict[date, int]:
    """Payouts confirmed on the network, by the day they were confirmed."""
    stmt = select(Payout.status_changed_at, Payout.amount).where(
        Payout.status == PayoutStatus.PAID,
        Payout.status_changed_at >= period.start_at,
        Payout.status_changed_at < period.end_at,
    )
    if creator_id is not None:
        stmt = stmt.where(Payout.creator_id == creator_id)
    return _per_day(db.session.execute(stmt), period)


def deposits(period: Period) -> tuple[dict[date, int], int]:
    """Deposits received into custody per day, and the part of them no memo matched."""
    rows = db.session.execute(
        select(Deposit.created_at, Deposit.amount, Deposit.status).where(
            Deposit.created_at >= period.start_at, Deposit.created_at < period.end_at
        )
    ).all()
    unmatched = sum(amount for _, amount, status in rows if status is not DepositStatus.CREDITED)
    return _per_day(((m, a) for m, a, _ in rows), period), unmatched


def new_users(period: Period) -> dict[date, int]:
    rows = db.session.execute(
        select(User.created_at).where(User.created_at >= period.start_at, User.created_at < period.end_at)
    )
    return _per_day(((m, 1) for (m,) in rows), period)


def now() -> dict:
    """What holds right now: money in custody and in flight, sessions running."""
    balances = dict(
        db.session.execute(
            select(Account.kind, Account.balance).where(
                Account.owner == ledger.PLATFORM, Account.kind.in_([AccountKind.CUSTODY, AccountKind.PAYOUTS_IN_FLIGHT])
            )
        ).all()
    )
    custody, in_flight = balances.get(AccountKind.CUSTODY, 0), balances.get(AccountKind.PAYOUTS_IN_FLIGHT, 0)
    active = db.session.scalar(
        select(func.count()).select_from(StreamSession).where(StreamSession.status == SessionStatus.ACTIVE)
    )
    return {"custody": -custody, "payouts_in_flight": in_flight, "active_sessions": active}
