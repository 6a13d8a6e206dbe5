"""Dashboard reads: sums over the rollups for a period in a zone, never over the charges."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, and_, case, func, literal_column, select, union_all

from streampay.analytics import buckets
from streampay.analytics.fold import PLATFORM, STEPS, VIEWER_GRAINS
from streampay.analytics.models import RetentionBucket, Rollup, ViewerBucket
from streampay.extensions import db

FIGURES = ("gross", "fee", "watch_ms", "sessions")
EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class Period:
    """Local days `first`..`last` (inclusive) in `zone`: [start, end) in UTC epoch seconds."""

    first: date
    last: date
    zone: ZoneInfo
    granularity: str

    @property
    def start(self) -> int:
        return buckets.local_midnight(self.first, self.zone)

    @property
    def end(self) -> int:
        return buckets.local_midnight(self.last + timedelta(days=1), self.zone)

    @property
    def start_at(self) -> datetime:
        """The period's first instant, on the zone's clock."""
        return datetime.fromtimestamp(self.start, self.zone)

    @property
    def end_at(self) -> datetime:
        return datetime.fromtimestamp(self.end, self.zone)

    def keys(self) -> list[date]:
        """Every bucket of the series, in order, named by its first local day (clipped to the period)."""
        seen = []
        for day in buckets.days(self.first, self.last):
            key = max(buckets.period_key(day, self.granularity), self.first)
            if not seen or seen[-1] != key:
                seen.append(key)
        return seen

    def key_of(self, day: date) -> date:
        return max(buckets.period_key(day, self.granularity), self.first)

    def local_day(self, moment: datetime) -> date:
        return moment.astimezone(self.zone).date()


def _pieces(model, columns: list, where: list, pieces: list[tuple[int, int, int]]):
    """The rows of every piece, one index range scan each (UNION ALL): an OR of ranges would let the planner
    read every row of the scope and filter them."""
    parts = [
        select(*columns).where(*where, model.grain == grain, model.bucket >= low, model.bucket < high)
        for grain, low, high in pieces
    ]
    return (union_all(*parts) if len(parts) > 1 else parts[0]).subquery()


def _scoped(model, scope: str, scope_id: str):
    return and_(model.scope == scope, model.scope_id == scope_id)


def _sums(table=Rollup):
    return [func.coalesce(func.sum(getattr(table, f)), 0) for f in FIGURES]


def totals(scope: str, scope_id: str, period: Period) -> dict:
    columns = [getattr(Rollup, f) for f in FIGURES]
    rows = _pieces(Rollup, columns, [_scoped(Rollup, scope, scope_id)], buckets.decompose(period.start, period.end))
    row = db.session.execute(select(*_sums(rows.c))).one()
    return dict(zip(FIGURES, (int(v) for v in row), strict=True))


def unique_viewers(scope: str, scope_id: str, period: Period) -> int:
    pieces = buckets.decompose(period.start, period.end, VIEWER_GRAINS)
    rows = _pieces(ViewerBucket, [ViewerBucket.viewer_id], [_scoped(ViewerBucket, scope, scope_id)], pieces)
    return db.session.scalar(select(func.count(func.distinct(rows.c.viewer_id))))


def _local_day_number(runs: list[tuple[int, int, int]]):
    """SQL for a bucket's local day (days since 1970-01-01 on the zone's wall clock), offset run by offset run.

    The numbers are ours (offsets and run ends), written into the SQL so GROUP BY repeats the SELECT's text.
    """

    def shifted(offset: int):
        return Rollup.bucket + literal_column(str(int(offset)))

    wall = shifted(runs[-1][2])
    if len(runs) > 1:
        wall = case(
            *((Rollup.bucket < literal_column(str(int(high))), shifted(offset)) for _, high, offset in runs[:-1]),
            else_=wall,
        )
    return wall.self_group().op("/", return_type=BigInteger)(literal_column("86400"))


def daily(scope: str, scope_id: str, period: Period) -> dict[date, dict]:
    """Sums per local day of the period, from the coarsest grain whose buckets fit inside the zone's days."""
    runs = buckets.offset_runs(period.start, period.end, period.zone)
    grain = buckets.grain_for(runs)
    day = _local_day_number(runs).label("day")
    rows = db.session.execute(
        select(day, *_sums())
        .where(
            _scoped(Rollup, scope, scope_id),
            Rollup.grain == grain,
            Rollup.bucket >= period.start,
            Rollup.bucket < period.end,
        )
        .group_by(day)
    )
    return {EPOCH + timedelta(days=int(n)): dict(zip(FIGURES, map(int, v), strict=True)) for n, *v in rows}


def series(scope: str, scope_id: str, period: Period, extra: dict[str, dict[date, int]] | None = None) -> list[dict]:
    """The period's buckets in order, each with the rollup figures and any `extra` per-day figures."""
    extra = extra or {}
    out = {key: {f: 0 for f in (*FIGURES, *extra)} for key in period.keys()}
    for day, figures in daily(scope, scope_id, period).items():
        bucket = out[period.key_of(day)]
        for f, v in figures.items():
            bucket[f] += v
    for name, per_day in extra.items():
        for day, v in per_day.items():
            out[period.key_of(day)][name] += v
    return [{"period": key, "start": _local_start(key, period.zone), **v} for key, v in out.items()]


def _local_start(day: date, zone: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def top(scope: str, period: Period, order: str, limit: int, owner: str | None = None) -> list[dict]:
    """The scope's ids (content or creators) ranked by `order` (net, gross or watch_ms) over the period."""
    where = [Rollup.scope == scope] + ([Rollup.owner == owner] if owner is not None else [])
    columns = [Rollup.scope_id, *(getattr(Rollup, f) for f in FIGURES)]
    rows = _pieces(Rollup, columns, where, buckets.decompose(period.start, period.end))
    gross, fee, watch_ms, sessions = (func.sum(getattr(rows.c, f)) for f in FIGURES)
    rank = {"net": gross - fee, "gross": gross, "watch_ms": watch_ms}[order]
    stmt = select(rows.c.scope_id, gross, fee, watch_ms, sessions).group_by(rows.c.scope_id)
    found = db.session.execute(stmt.order_by(rank.desc(), rows.c.scope_id).limit(limit))
    return [{"id": sid, **dict(zip(FIGURES, map(int, v), strict=True))} for sid, *v in found]


def retention(content_id: str, period: Period) -> tuple[int, list[dict]]:
    """Sessions of the item that ended in the period, and the share still watching at each 5 % of it."""
    pieces = buckets.decompose(period.start, period.end, VIEWER_GRAINS)
    columns = [RetentionBucket.step, RetentionBucket.sessions]
    rows = _pieces(RetentionBucket, columns, [RetentionBucket.content_id == content_id], pieces)
    by_step = dict(db.session.execute(select(rows.c.step, func.sum(rows.c.sessions)).group_by(rows.c.step)).all())
    total = int(sum(by_step.values()))
    curve, still = [], total
    for step in range(STEPS + 1):
        curve.append({"percent": step * 5, "sessions": still, "share": round(still / total, 4) if total else 0.0})
        still -= int(by_step.get(step, 0))
    return total, curve


def platform_scope() -> tuple[str, str]:
    return "platform", PLATFORM


def as_uuid(value: str) -> uuid.UUID:
    return uuid.UUID(value)
