"""Figures that do not pass through the usage outbox: payouts, deposits, new users, balances now.

Each is read from the table written in the same transaction as its ledger posting, by an index on
its time, and summed per local day by the database: a year of them is at most 366 rows.
"""

from __future__ import annotations

from streampay.analytics import buckets
from streampay.analytics.batch import Batch, epoch_seconds, total
from streampay.analytics.queries import Period
from streampay.dbtypes import UTCDateTime
from streampay.ledger import service as ledger
from streampay.ledger.models import Account, AccountKind
from streampay.stellar.models import Deposit, DepositStatus, Payout, PayoutStatus
from streampay.streaming.models import SessionStatus, StreamSession
from streampay.users.models import User

UTC_TIME = UTCDateTime()


def local_day(moment: str, runs: list[tuple[int, int, int]]) -> str:
    """SQL for the local day (days since 1970-01-01 on the zone's wall clock) of `moment`, epoch seconds in SQL,
    offset run by offset run (our own numbers, written into the SQL)."""
    wall = f"{moment} + {int(runs[-1][2])}"
    if len(runs) > 1:
        whens = " ".join(f"WHEN {moment} < {int(high)} THEN {moment} + {int(offset)}" for _, high, offset in runs[:-1])
        wall = f"CASE {whens} ELSE {wall} END"
    return f"({wall}) / 86400"


def _daily(batch: Batch, name: str, table: str, column: str, period: Period, amount: str, extra="0", where="") -> None:
    """Sums of `amount` (and `extra`) per local day of the rows whose `column` (a time) falls in the period,
    as (local day number, 0, amount, extra)."""
    day = local_day(epoch_seconds(column), buckets.offset_runs(period.start, period.end, period.zone))
    start = batch.bind(f"{name}_start", period.start_at, UTC_TIME)
    end = batch.bind(f"{name}_end", period.end_at, UTC_TIME)
    batch.add(
        name,
        f"SELECT {day} AS day, 0 AS k2, {total(amount)}, {total(extra)}, 0, 0, '', '' FROM {table} "  # noqa: S608
        f"WHERE {column} >= {start} AND {column} < {end}{where} GROUP BY {day}",
    )


def add_paid(batch: Batch, period: Period, creator_id=None) -> None:
    """Payouts confirmed on the network, by the day they were confirmed (`paid_out` rows)."""
    where = f" AND status = {batch.bind('paid_status', PayoutStatus.PAID.value)}"
    if creator_id is not None:
        where += f" AND creator_id = {batch.bind('paid_creator', creator_id, Payout.creator_id.type)}"
    _daily(batch, "paid_out", Payout.__tablename__, "status_changed_at", period, "amount", where=where)


def add_platform(batch: Batch, period: Period) -> None:
    """Payouts confirmed, deposits received (and the part no memo matched) and users joined, per local day."""
    add_paid(batch, period)
    credited = batch.bind("credited", DepositStatus.CREDITED.value)
    unmatched = f"CASE WHEN status <> {credited} THEN amount ELSE 0 END"
    _daily(batch, "deposits", Deposit.__tablename__, "created_at", period, "amount", unmatched)
    _daily(batch, "new_users", User.__tablename__, "created_at", period, "1")


def add_now(batch: Batch) -> None:
    """What holds right now: money in custody and in flight, sessions running (one `now` row)."""
    owner = batch.bind("now_owner", ledger.PLATFORM)
    custody = batch.bind("now_custody", AccountKind.CUSTODY.value)
    flight = batch.bind("now_flight", AccountKind.PAYOUTS_IN_FLIGHT.value)
    active = batch.bind("now_active", SessionStatus.ACTIVE.value)
    batch.add(
        "now",
        f"SELECT 0, 0, coalesce({total(f'CASE WHEN kind = {custody} THEN balance END')}, 0), "  # noqa: S608
        f"coalesce({total(f'CASE WHEN kind = {flight} THEN balance END')}, 0), "
        f"(SELECT count(*) FROM {StreamSession.__tablename__} WHERE status = {active}), 0, '', '' "
        f"FROM {Account.__tablename__} WHERE owner = {owner} AND kind IN ({custody}, {flight})",
    )


def now(rows: list[tuple]) -> dict:
    _, _, custody, in_flight, active, *_ = rows[0]
    return {"custody": -int(custody), "payouts_in_flight": int(in_flight), "active_sessions": int(active)}


def unmatched(rows: list[tuple]) -> int:
    """The deposits no memo matched, from the `deposits` rows."""
    return sum(int(extra or 0) for _, _, _, extra, *_ in rows)
