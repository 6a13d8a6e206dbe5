"""Figures that do not pass through the usage outbox: payouts, deposits, new users, balances now.

Each is read from the table written in the same transaction as its ledger posting, by an index on
its time, and summed per local day by the database: a year of them is at most 366 rows.
"""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import BigInteger, case, func, literal, select, union_all
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


def _daily(name: str, column, period: Period, amount, extra=0, where=()):
    """Sums of `amount` (and `extra`) per local day of the rows whose `column` (a time) falls in the period."""
    day = local_day(epoch_seconds(column), buckets.offset_runs(period.start, period.end, period.zone)).label("day")
    return (
        select(literal(name).label("flow"), day, func.sum(amount), func.sum(extra))
        .where(column >= period.start_at, column < period.end_at, *where)
        .group_by(day)
    )


def _read(*flows) -> dict[str, dict[date, tuple[int, int]]]:
    """Each flow's sums per local day, in one statement: {name: {day: (amount, extra)}} for (name, select)."""
    out: dict[str, dict] = {name: {} for name, _ in flows}
    selects = [f for _, f in flows]
    for name, n, amount, extra in db.session.execute(union_all(*selects) if len(selects) > 1 else selects[0]):
        out[name][EPOCH + timedelta(days=int(n))] = (int(amount or 0), int(extra or 0))
    return out


def _paid(period: Period, creator_id=None):
    """Payouts confirmed on the network, by the day they were confirmed."""
    where = [Payout.status == PayoutStatus.PAID] + ([Payout.creator_id == creator_id] if creator_id else [])
    return "paid_out", _daily("paid_out", Payout.status_changed_at, period, Payout.amount, where=where)


def paid_out(period: Period, creator_id) -> dict[date, int]:
    return {d: v for d, (v, _) in _read(_paid(period, creator_id))["paid_out"].items()}


def platform(period: Period) -> tuple[dict[str, dict[date, int]], int]:
    """Payouts confirmed, deposits received and users joined per local day; and the deposits no memo matched."""
    unmatched = case((Deposit.status != DepositStatus.CREDITED, Deposit.amount), else_=0)
    flows = _read(
        _paid(period),
        ("deposits", _daily("deposits", Deposit.created_at, period, Deposit.amount, unmatched)),
        ("new_users", _daily("new_users", User.created_at, period, 1)),
    )
    per_day = {name: {d: v for d, (v, _) in days.items()} for name, days in flows.items()}
    return per_day, sum(u for _, u in flows["deposits"].values())


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
