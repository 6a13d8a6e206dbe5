"""Figures that do not pass through the usage outbox: payouts, deposits, new users, balances now.

Each is read from the table written in the same transaction as its ledger posting, by an index on
its time, and summed per local day by the database: a year of them is at most 366 rows.
"""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import BigInteger, case, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from streampay.analytics import buckets
from streampay.analytics.queries import EPOCH, Period, local_day
from streampay.extensions import db
from streampay.ledger import service as ledger
from streampay.ledger.models import Account, AccountKind
from streampay.stellar.models import Deposit, DepositStatus, Payout, PayoutStatus
from streampay.streaming.models import SessionStatus, StreamSession
from streampay.users.models import User


class epoch_seconds(FunctionElement):  # noqa: N801 (an SQL function)
    """A UTC timestamp column as whole epoch seconds, on PostgreSQL and on SQLite (naive UTC text)."""

    type = BigInteger()
    inherit_cache = True


@compiles(epoch_seconds, "postgresql")
def _epoch_pg(element, compiler, **kw) -> str:
    return f"CAST(floor(extract(epoch FROM {compiler.process(element.clauses, **kw)})) AS BIGINT)"


@compiles(epoch_seconds)
def _epoch_sqlite(element, compiler, **kw) -> str:
    return f"CAST(strftime('%s', {compiler.process(element.clauses, **kw)}) AS INTEGER)"


def _per_day(column, period: Period, *sums, where=()) -> dict[date, tuple[int, ...]]:
    """Sums per local day of rows whose `column` (a time) falls in the period."""
    runs = buckets.offset_runs(period.start, period.end, period.zone)
    day = local_day(epoch_seconds(column), runs).label("day")
    rows = db.session.execute(
        select(day, *(func.coalesce(func.sum(s), 0) for s in sums))
        .where(column >= period.start_at, column < period.end_at, *where)
        .group_by(day)
    )
    return {EPOCH + timedelta(days=int(n)): tuple(int(v) for v in figures) for n, *figures in rows}


def paid_out(period: Period, creator_id=None) -> dict[date, int]:
    """Payouts confirmed on the network, by the day they were confirmed."""
    where = [Payout.status == PayoutStatus.PAID]
    if creator_id is not None:
        where.append(Payout.creator_id == creator_id)
    return {d: v for d, (v,) in _per_day(Payout.status_changed_at, period, Payout.amount, where=where).items()}


def deposits(period: Period) -> tuple[dict[date, int], int]:
    """Deposits received into custody per day, and the part of them no memo matched."""
    unmatched = case((Deposit.status != DepositStatus.CREDITED, Deposit.amount), else_=0)
    per_day = _per_day(Deposit.created_at, period, Deposit.amount, unmatched)
    return {d: v for d, (v, _) in per_day.items()}, sum(u for _, u in per_day.values())


def new_users(period: Period) -> dict[date, int]:
    return {d: v for d, (v,) in _per_day(User.created_at, period, 1).items()}


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
