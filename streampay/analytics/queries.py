"""Dashboard reads: sums over the rollups for a period in a zone, never over the charges."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, and_, case, func, literal, literal_column, or_, select, text, union_all

from streampay.analytics import buckets
from streampay.analytics.fold import PLATFORM, RETENTION_GRAINS, STEPS
from streampay.analytics.models import FIGURES, RetentionBucket, Rollup
from streampay.extensions import db

EPOCH = buckets.EPOCH


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

    def cover(self, keys: list[date]) -> buckets.Cover:
        """The rollup rows of the periods that start on `keys` (local dates) and end with this period."""
        dates = [*keys, self.last + timedelta(days=1)]
        return buckets.cover(
            [buckets.local_midnight(d, self.zone) for d in dates], [buckets.utc_midnight(d) for d in dates]
        )


def _scoped(model, scope: str, scope_id: str):
    return and_(model.scope == scope, model.scope_id == scope_id)


def _cover_rows(columns: list, where: list, cover: buckets.Cover, signs: bool = False):
    """The rollup rows a Cover reads, one index scan per range of days or months and one per grain of the
    hours and quarters that set its edges right (UNION ALL: an OR of ranges would read the whole scope).
    With `signs` (a Cover of one period), each row carries its sign as a last column."""

    def part(grain, bound, sign=1):
        return select(*columns, *([literal(sign).label("sign")] if signs else [])).where(
            *where, Rollup.grain == grain, bound
        )

    parts = [part(g, and_(Rollup.bucket >= low, Rollup.bucket < high)) for g, low, high in cover.ranges]
    edges: dict[tuple[int, int], list[int]] = {}
    for (grain, bucket), hits in cover.corrections.items():
        edges.setdefault((grain, hits[0][1] if signs else 1), []).append(bucket)
    parts += [part(g, Rollup.bucket.in_(sorted(ts)), sign) for (g, sign), ts in sorted(edges.items())]
    if not parts:
        return None
    return union_all(*parts) if len(parts) > 1 else parts[0]


def sums(scope: str, scope_id: str, period: Period) -> list[tuple[date, list[int]]]:
    """The rollup figures of each bucket of the period's series, in order."""
    keys = period.keys()
    cover = period.cover(keys)
    out = [[0, 0, 0, 0] for _ in keys]
    columns = [Rollup.grain, Rollup.bucket, *(getattr(Rollup, f) for f in FIGURES)]
    stmt = _cover_rows(columns, [_scoped(Rollup, scope, scope_id)], cover)
    for grain, bucket, *figures in db.session.execute(stmt) if stmt is not None else ():
        for i, sign in cover.period_of(grain, bucket):
            point = out[i]
            for n, v in enumerate(figures):
                point[n] += sign * v
    return list(zip(keys, out, strict=True))


def series(scope: str, scope_id: str, period: Period, extra: dict[str, dict[date, int]] | None = None) -> list[dict]:
    """The period's buckets in order, each with the rollup figures and any `extra` per-day figures."""
    extra = extra or {}
    points = {key: dict(zip(FIGURES, figures, strict=True)) for key, figures in sums(scope, scope_id, period)}
    for name, per_day in extra.items():
        for point in points.values():
            point[name] = 0
        for day, v in per_day.items():
            points[period.key_of(day)][name] += v
    return [{"period": key, "start": _local_start(key, period.zone), **v} for key, v in points.items()]


def _local_start(day: date, zone: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def unique_viewers(scope: str, scope_id: str, period: Period) -> int:
    """Viewers who watched in the period, exactly: whole UTC days from the day masks (a row per viewer and
    year), the zone-shifted edges from quarter-hour rows. Written as SQL text: built as expressions, the
    twelve month tests cost more CPU than the database spends answering them."""
    start, end = period.start, period.end
    low, high = buckets.ceil(start, buckets.DAY), buckets.floor(end, buckets.DAY)
    parts, edges = [], [(start, end)]
    params: dict = {"scope": scope, "scope_id": scope_id}
    scoped = "scope = :scope AND scope_id = :scope_id"
    if low < high:
        edges = [(start, low), (high, end)]
        for n, (year, months) in enumerate(buckets.day_masks(low, high).items()):
            seen = " OR ".join(f"(m{m} & :b{n}_{m}) <> 0" for m in sorted(months))
            where = f"{scoped} AND year = :y{n} AND ({seen})"
            parts.append(f"SELECT viewer_id FROM analytics_viewer_days WHERE {where}")  # noqa: S608 (bind names only)
            params |= {f"y{n}": year, **{f"b{n}_{m}": bits for m, bits in months.items()}}
    for n, (a, b) in enumerate(edges):
        if a < b:
            where = f"{scoped} AND grain = {buckets.QUARTER} AND bucket >= :a{n} AND bucket < :z{n}"
            parts.append(f"SELECT viewer_id FROM analytics_viewers WHERE {where}")  # noqa: S608 (bind names only)
            params |= {f"a{n}": a, f"z{n}": b}
    # GROUP BY hashes; count(DISTINCT) would sort the ids by the database's collation.
    seen = " UNION ALL ".join(parts)
    sql = f"SELECT count(*) FROM (SELECT viewer_id FROM ({seen}) AS seen GROUP BY viewer_id) AS v"  # noqa: S608
    return db.session.scalar(text(sql), params)


RANKS = {
    "net": lambda r: r["gross"] - r["fee"],
    "gross": lambda r: r["gross"],
    "watch_ms": lambda r: r["watch_ms"],
}


def ranked(scope: str, period: Period, orders: dict[str, str], limit: int, owner: str | None = None) -> dict:
    """The scope's ids (content or creators) with the most of each order (net, gross or watch_ms) over the
    period: {name: [{"id", gross, fee, watch_ms, sessions}]}, from one grouping read once per order."""
    where = [Rollup.scope == scope] + ([Rollup.owner == owner] if owner is not None else [])
    columns = [Rollup.scope_id, *(getattr(Rollup, f) for f in FIGURES)]
    stmt = _cover_rows(columns, where, period.cover([period.first]), signs=True)
    out: dict[str, list] = {name: [] for name in orders}
    if stmt is None:
        return out
    rows = stmt.subquery()
    totals = [func.sum(getattr(rows.c, f) * rows.c.sign).label(f) for f in FIGURES]
    grouped = select(rows.c.scope_id, *totals).group_by(rows.c.scope_id).cte("grouped")
    g = grouped.c
    rank = {"net": g.gross - g.fee, "gross": g.gross, "watch_ms": g.watch_ms}
    picks = [
        select(literal(name).label("list"), grouped)
        .where(or_(g.gross != 0, g.watch_ms != 0, g.sessions != 0))  # edges taken off can leave an id at zero
        .order_by(rank[order].desc(), g.scope_id)
        .limit(limit)
        .subquery()
        .select()
        for name, order in orders.items()
    ]
    for name, sid, *v in db.session.execute(union_all(*picks) if len(picks) > 1 else picks[0]):
        out[name].append({"id": sid, **dict(zip(FIGURES, map(int, v), strict=True))})
    for name, order in orders.items():  # a UNION ALL keeps no order of its own
        out[name].sort(key=lambda r, key=RANKS[order]: (-key(r), r["id"]))
    return out


def retention(content_id: str, period: Period) -> tuple[int, list[dict]]:
    """Sessions of the item that ended in the period, and the share still watching at each 5 % of it."""
    pieces = buckets.decompose(period.start, period.end, RETENTION_GRAINS)
    parts = [
        select(RetentionBucket.step, RetentionBucket.sessions).where(
            RetentionBucket.content_id == content_id,
            RetentionBucket.grain == grain,
            RetentionBucket.bucket >= low,
            RetentionBucket.bucket < high,
        )
        for grain, low, high in pieces
    ]
    rows = (union_all(*parts) if len(parts) > 1 else parts[0]).subquery()
    by_step = dict(db.session.execute(select(rows.c.step, func.sum(rows.c.sessions)).group_by(rows.c.step)).all())
    total = int(sum(by_step.values()))
    curve, still = [], total
    for step in range(STEPS + 1):
        curve.append({"percent": step * 5, "sessions": still, "share": round(still / total, 4) if total else 0.0})
        still -= int(by_step.get(step, 0))
    return total, curve


def local_day(moment, runs: list[tuple[int, int, int]]):
    """SQL for the local day (days since 1970-01-01 on the zone's wall clock) of `moment`, epoch seconds in SQL,
    offset run by offset run. The numbers are ours (offsets and run ends), written into the SQL so GROUP BY
    repeats the SELECT's text."""

    def shifted(offset: int):
        return moment + literal_column(str(int(offset)))

    wall = shifted(runs[-1][2])
    if len(runs) > 1:
        wall = case(
            *((moment < literal_column(str(int(high))), shifted(offset)) for _, high, offset in runs[:-1]),
            else_=wall,
        )
    return wall.self_group().op("/", return_type=BigInteger)(literal_column("86400"))


def platform_scope() -> tuple[str, str]:
    return "platform", PLATFORM


def as_uuid(value: str) -> uuid.UUID:
    return uuid.UUID(value)
