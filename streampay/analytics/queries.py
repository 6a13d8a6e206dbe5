"""Dashboard reads: sums over the rollups for a period in a zone, never over the charges.

Each read adds its parts to a call's Batch (one statement) and decodes its rows afterwards.
"""

from __future__ import annotations

import uuid
from bisect import bisect_right
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from streampay.analytics import buckets
from streampay.analytics.batch import Batch, as_uuid_key, ints, total
from streampay.analytics.fold import PLATFORM, RETENTION_GRAINS, STEPS
from streampay.analytics.models import FIGURES, RetentionBucket, Rollup, ViewerBucket, ViewerDays
from streampay.content.models import Content

EPOCH = buckets.EPOCH
ROLLUP_FIGURES = ", ".join(FIGURES)
ROLLUPS, VIEWERS, VIEWER_DAYS = Rollup.__tablename__, ViewerBucket.__tablename__, ViewerDays.__tablename__
RETENTION = RetentionBucket.__tablename__


@dataclass(frozen=True)
class Layout:
    """A period's series, worked out once per period, zone and granularity (pure arithmetic, no data)."""

    labels: tuple[tuple[str, str], ...]  # each bucket's first local day and its local midnight, in ISO 8601
    key_days: tuple[int, ...]  # each bucket's first local day, in days since 1970-01-01
    cover: buckets.Cover  # the rollup rows of the buckets
    whole: buckets.Cover  # the rollup rows of the whole period, signed


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

    @property
    def layout(self) -> Layout:
        return _layout(self.first, self.last, self.zone, self.granularity)

    def keys(self) -> list[date]:
        """Every bucket of the series, in order, named by its first local day (clipped to the period)."""
        seen = []
        for day in buckets.days(self.first, self.last):
            key = max(buckets.period_key(day, self.granularity), self.first)
            if not seen or seen[-1] != key:
                seen.append(key)
        return seen

    def cover(self, keys: list[date]) -> buckets.Cover:
        """The rollup rows of the periods that start on `keys` (local dates) and end with this period."""
        dates = [*keys, self.last + timedelta(days=1)]
        return buckets.cover(
            [buckets.local_midnight(d, self.zone) for d in dates], [buckets.utc_midnight(d) for d in dates]
        )


@lru_cache(maxsize=512)
def _layout(first: date, last: date, zone: ZoneInfo, granularity: str) -> Layout:
    period = Period(first, last, zone, granularity)
    keys = period.keys()
    labels = tuple((k.isoformat(), datetime(k.year, k.month, k.day, tzinfo=zone).isoformat()) for k in keys)
    days = tuple((k - EPOCH).days for k in keys)
    return Layout(labels, days, period.cover(keys), period.cover([first]))


def _cover_sql(columns: str, where: str, cover: buckets.Cover, signs: bool = False) -> str | None:
    """The rollup rows a Cover reads, one index scan per range of days or months and one per grain of the
    hours and quarters that set its edges right (UNION ALL: an OR of ranges would read the whole scope).
    With `signs` (a Cover of one period), each row carries its sign as a last column."""

    def part(grain: int, bound: str, sign: int = 1) -> str:
        signed = f", {sign} AS sign" if signs else ""
        return f"SELECT {columns}{signed} FROM {ROLLUPS} WHERE {where} AND grain = {grain} AND {bound}"  # noqa: S608

    parts = [part(g, f"bucket >= {int(low)} AND bucket < {int(high)}") for g, low, high in cover.ranges]
    edges: dict[tuple[int, int], list[int]] = {}
    for (grain, bucket), hits in cover.corrections.items():
        edges.setdefault((grain, hits[0][1] if signs else 1), []).append(bucket)
    parts += [part(g, f"bucket IN ({ints(sorted(ts))})", sign) for (g, sign), ts in sorted(edges.items())]
    return " UNION ALL ".join(parts) or None


def add_series(batch: Batch, scope: str, scope_id: str, period: Period) -> None:
    """The rollup rows of the period's series buckets, as (grain, bucket, gross, fee, watch_ms, sessions)."""
    where = f"scope = {batch.bind('s_scope', scope)} AND scope_id = {batch.bind('s_id', scope_id)}"
    rows = _cover_sql(f"grain, bucket, {ROLLUP_FIGURES}, '' AS id, '' AS name", where, period.layout.cover)
    if rows is not None:
        batch.add("series", rows)


@dataclass(frozen=True)
class Series:
    """A period's buckets in order: their labels and, per bucket, the figures `names` in stroops and counts."""

    labels: tuple[tuple[str, str], ...]
    names: tuple[str, ...]
    values: list[list[int]]

    def totals(self) -> dict[str, int]:
        """The period's totals: the sum of its buckets, which cover it exactly."""
        totals = dict(zip(self.names, map(sum, zip(*self.values, strict=True)), strict=True)) if self.values else {}
        totals = totals or dict.fromkeys(self.names, 0)
        totals["watch_seconds"] = totals["watch_ms"] // 1000  # of the total, not a sum of rounded-down seconds
        return totals


def series(period: Period, rows: list[tuple], extra: dict[str, list[tuple]] | None = None) -> Series:
    """The rollup figures of `rows` summed into the period's buckets, and each `extra` figure (rows of a local
    day number, 0 and an amount) summed into the bucket of its day."""
    layout, extra = period.layout, extra or {}
    n = len(layout.labels)
    sums = [[0, 0, 0, 0] for _ in range(n)]
    cover, midnights = layout.cover, layout.cover.midnights
    for grain, bucket, gross, fee, watch_ms, sessions, *_ in rows:
        if grain == buckets.DAY or grain == buckets.MONTH:
            hits = ((bisect_right(midnights, bucket) - 1, 1),)
        else:
            hits = cover.corrections.get((grain, bucket), ())
        for i, sign in hits:
            point = sums[i]
            point[0] += sign * int(gross)
            point[1] += sign * int(fee)
            point[2] += sign * int(watch_ms)
            point[3] += sign * int(sessions)
    flows = []
    for days in extra.values():
        into = [0] * n
        for day, _, amount, *_ in days:
            into[bisect_right(layout.key_days, int(day)) - 1] += int(amount)
        flows.append(into)
    values = [
        [gross, fee, gross - fee, watch_ms, watch_ms // 1000, sessions, *(f[i] for f in flows)]
        for i, (gross, fee, watch_ms, sessions) in enumerate(sums)
    ]
    return Series(layout.labels, (*SERIES_FIGURES, *extra), values)


SERIES_FIGURES = ("gross", "fees", "net", "watch_ms", "watch_seconds", "sessions")


def add_unique_viewers(batch: Batch, scope: str, scope_id: str, period: Period) -> None:
    """Viewers who watched in the period, exactly: whole UTC days from the day masks (a row per viewer and
    year), the zone-shifted edges from quarter-hour rows."""
    start, end = period.start, period.end
    low, high = buckets.ceil(start, buckets.DAY), buckets.floor(end, buckets.DAY)
    parts, edges = [], [(start, end)]
    scoped = f"scope = {batch.bind('uv_scope', scope)} AND scope_id = {batch.bind('uv_id', scope_id)}"
    if low < high:
        edges = [(start, low), (high, end)]
        for year, months in buckets.day_masks(low, high).items():
            seen = " OR ".join(f"(m{m} & {int(months[m])}) <> 0" for m in sorted(months))
            where = f"{scoped} AND year = {int(year)} AND ({seen})"
            parts.append(f"SELECT viewer_id FROM {VIEWER_DAYS} WHERE {where}")  # noqa: S608 (our numbers)
    for a, b in edges:
        if a < b:
            where = f"{scoped} AND grain = {buckets.QUARTER} AND bucket >= {int(a)} AND bucket < {int(b)}"
            parts.append(f"SELECT viewer_id FROM {VIEWERS} WHERE {where}")  # noqa: S608 (our numbers)
    # GROUP BY hashes; count(DISTINCT) would sort the ids by the database's collation.
    seen = " UNION ALL ".join(parts)
    batch.add(
        "viewers",
        f"SELECT count(*) AS k1, 0 AS k2, 0 AS a, 0 AS b, 0 AS c, 0 AS d, '' AS id, '' AS name "  # noqa: S608
        f"FROM (SELECT viewer_id FROM ({seen}) AS seen GROUP BY viewer_id) AS v",
    )


def unique_viewers(rows: list[tuple]) -> int:
    return int(rows[0][0]) if rows else 0


NAMES = {"content": ("content", "title"), "creator": ("users", "username")}
RANKS = {"net": "gross - fee", "gross": "gross", "watch_ms": "watch_ms"}


def add_ranked(batch: Batch, scope: str, period: Period, orders: dict[str, str], limit: int, owner: str | None) -> None:
    """The scope's ids (content or creators) with the most of each order (net, gross or watch_ms) over the
    period (of `owner`'s content only, when given), from one grouping read once, each with its title or name."""
    where = f"scope = {batch.bind(f'rk_{scope}', scope)}"
    if owner is not None:
        where += f" AND owner = {batch.bind(f'rk_{scope}_owner', owner)}"
    rows = _cover_sql(f"scope_id, {ROLLUP_FIGURES}", where, period.layout.whole, signs=True)
    if rows is None:
        return
    grouped = f"ranked_{scope}"
    totals = ", ".join(f"{total(f'{f} * sign')} AS {f}" for f in FIGURES)
    batch.cte(grouped, f"SELECT scope_id, {totals} FROM ({rows}) AS r GROUP BY scope_id")  # noqa: S608
    table, name = NAMES[scope]
    join = as_uuid_key("g.scope_id")
    for tag, order in orders.items():
        top = (
            f"SELECT * FROM {grouped} WHERE gross <> 0 OR watch_ms <> 0 OR sessions <> 0 "  # noqa: S608
            f"ORDER BY {RANKS[order]} DESC, scope_id LIMIT {int(limit)}"
        )
        batch.add(
            tag,
            f"SELECT 0, 0, g.gross, g.fee, g.watch_ms, g.sessions, g.scope_id, n.{name} "  # noqa: S608
            f"FROM ({top}) AS g LEFT JOIN {table} AS n ON n.id = {join}",
        )


def ranked(rows: list[tuple], order: str) -> list[tuple[str, str | None, dict]]:
    """(id, name, figures) in the order's ranking (a UNION ALL keeps no order of its own); the figures
    repeat the id as `id`, as the answers always have."""
    out = []
    for _, _, gross, fee, watch_ms, sessions, sid, name in rows:
        gross, fee, watch_ms, sessions = int(gross), int(fee), int(watch_ms), int(sessions)
        figures = {
            "id": sid,
            "gross": gross,
            "fees": fee,
            "net": gross - fee,
            "watch_ms": watch_ms,
            "watch_seconds": watch_ms // 1000,
            "sessions": sessions,
        }
        out.append((sid, name, figures))
    key = {"net": lambda r: r[2]["net"], "gross": lambda r: r[2]["gross"], "watch_ms": lambda r: r[2]["watch_ms"]}
    return sorted(out, key=lambda r: (-key[order](r), r[0]))


def add_retention(batch: Batch, content_id: str, period: Period) -> None:
    """Sessions of the item that ended in the period, by how far they got."""
    item = batch.bind("rt_id", content_id)
    parts = [
        f"SELECT step, sessions FROM {RETENTION} WHERE content_id = {item} AND grain = {int(grain)} "  # noqa: S608
        f"AND bucket >= {int(low)} AND bucket < {int(high)}"
        for grain, low, high in buckets.decompose(period.start, period.end, RETENTION_GRAINS)
    ]
    batch.add(
        "retention",
        f"SELECT step, 0, {total('sessions')}, 0, 0, 0, '', '' FROM ({' UNION ALL '.join(parts)}) AS r GROUP BY step",  # noqa: S608
    )


def retention(rows: list[tuple]) -> tuple[int, list[dict]]:
    """The sessions, and the share still watching at each 5 %."""
    by_step = {int(step): int(n) for step, _, n, *_ in rows}
    total = sum(by_step.values())
    curve, still = [], total
    for step in range(STEPS + 1):
        curve.append({"percent": step * 5, "sessions": still, "share": round(still / total, 4) if total else 0.0})
        still -= by_step.get(step, 0)
    return total, curve


def add_item(batch: Batch, content_id: uuid.UUID) -> None:
    """The item itself, read with its figures: (0, 0, duration_ms, 0, 0, 0, creator id, title)."""
    key = batch.bind("item_id", content_id, Content.id.type)
    batch.add(
        "item",
        f"SELECT 0, 0, duration_ms, 0, 0, 0, CAST(creator_id AS TEXT), title FROM {Content.__tablename__} "  # noqa: S608
        f"WHERE id = {key}",
    )


def item(rows: list[tuple]) -> tuple[uuid.UUID, str, int | None] | None:
    """(creator id, title, duration_ms) of the item, or None when there is no such item."""
    if not rows:
        return None
    _, _, duration_ms, _, _, _, creator_id, title = rows[0]
    return uuid.UUID(creator_id), title, duration_ms


def platform_scope() -> tuple[str, str]:
    return "platform", PLATFORM
