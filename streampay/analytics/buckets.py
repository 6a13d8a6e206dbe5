"""Bucket arithmetic in UTC epoch seconds: grains, a period's decomposition, a zone's days.

Pure functions, no database: the fold and the queries share them.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

QUARTER, HOUR, DAY, MONTH = 1, 2, 3, 4
EPOCH = date(1970, 1, 1)
GRAINS = (QUARTER, HOUR, DAY, MONTH)
SECONDS = {QUARTER: 900, HOUR: 3600, DAY: 86400}


def _month_start(t: int) -> int:
    d = datetime.fromtimestamp(t, UTC)
    return int(datetime(d.year, d.month, 1, tzinfo=UTC).timestamp())


def _next_month(t: int) -> int:
    d = datetime.fromtimestamp(t, UTC)
    year, month = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp())


def floor(t: int, grain: int) -> int:
    """The start of the bucket of `grain` that holds `t`."""
    if grain == MONTH:
        return _month_start(t)
    return t - t % SECONDS[grain]


def ceil(t: int, grain: int) -> int:
    start = floor(t, grain)
    if start == t:
        return t
    return _next_month(t) if grain == MONTH else start + SECONDS[grain]


def decompose(start: int, end: int, grains: tuple[int, ...] = GRAINS) -> list[tuple[int, int, int]]:
    """[start, end) as (grain, from, to) pieces, finest at the edges and coarsest in the middle.

    `start` and `end` fall on the finest grain's boundaries. Each piece covers whole buckets of its grain.
    """
    if start >= end:
        return []
    finer = grains[0]
    if len(grains) == 1:
        return [(finer, start, end)]
    low, high = ceil(start, grains[1]), floor(end, grains[1])
    if low >= high:  # no whole bucket of the next grain inside: the finer one covers it all
        return [(finer, start, end)]
    edges = [(finer, a, b) for a, b in ((start, low), (high, end)) if a < b]
    return edges + decompose(low, high, grains[1:])


def utc_midnight(day: date) -> int:
    """The UTC epoch second at which `day` begins in UTC."""
    return (day - EPOCH).days * SECONDS[DAY]


def local_midnight(day: date, zone: ZoneInfo) -> int:
    """The UTC epoch second at which `day` begins in `zone`, on the quarter hour."""
    t = int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp())
    return t - t % SECONDS[QUARTER]


def offset(t: int, zone: ZoneInfo) -> int:
    """The zone's UTC offset at epoch second `t`, in seconds."""
    return int(datetime.fromtimestamp(t, zone).utcoffset().total_seconds())


@lru_cache(maxsize=256)
def offset_runs(start: int, end: int, zone: ZoneInfo) -> list[tuple[int, int, int]]:
    """[start, end) split where the zone's offset changes: (from, to, offset) runs.

    Strides a day at a time and narrows a change down to its quarter hour (a bisection).
    """
    quarter = SECONDS[QUARTER]
    runs, low, t = [], start, start
    current = offset(start, zone)
    while t < end:
        nxt = min(t + 86400, end)
        last = nxt if nxt < end else nxt - quarter  # the furthest quarter start this stride answers for
        if offset(last, zone) == current:
            t = nxt
            continue
        same, other = t, last  # the offset holds at `same`, not at `other`: bisect to adjacent quarters
        while other - same > quarter:
            mid = same + (other - same) // quarter // 2 * quarter
            if offset(mid, zone) == current:
                same = mid
            else:
                other = mid
        runs.append((low, other, current))
        low = t = other
        current = offset(other, zone)
    runs.append((low, end, current))
    return runs


@dataclass(frozen=True)
class Cover:
    """Consecutive periods [b_0, b_1), ..., [b_n-1, b_n) as signed sums of rollup rows.

    Period i is first taken as the whole UTC days (months where they fit) between the UTC midnights u_i
    and u_i+1 of its local dates, then each local midnight b_i is set right by the hours and quarters
    between it and u_i: added to one side, taken off the other. So a year by day in a +05:30 zone reads
    365 days and 7 rows a day, not 35,040 quarters; in UTC it reads the days alone.
    """

    ranges: list[tuple[int, int, int]]  # (grain, from, to) of days and months; a row's period: bisect on midnights
    midnights: list[int]
    corrections: dict[tuple[int, int], list[tuple[int, int]]]  # (grain, bucket) of hours, quarters -> (period, sign)

    @property
    def periods(self) -> int:
        return len(self.midnights) - 1

    def period_of(self, grain: int, bucket: int) -> list[tuple[int, int]]:
        if grain in (DAY, MONTH):
            return [(bisect_right(self.midnights, bucket) - 1, 1)]
        return self.corrections.get((grain, bucket), [])


def cover(boundaries: list[int], midnights: list[int]) -> Cover:
    """The Cover of the periods between `boundaries` (local midnights, on the quarter hour), given the UTC
    midnights of the same dates."""
    n = len(boundaries) - 1
    ranges = sorted(
        piece
        for low, high in zip(midnights, midnights[1:], strict=False)
        for piece in (decompose(low, high, (DAY, MONTH)) if high - low >= 28 * SECONDS[DAY] else [(DAY, low, high)])
    )  # shorter than 28 days, no month fits
    merged: list[tuple[int, int, int]] = []
    for grain, low, high in ranges:
        if merged and merged[-1][0] == grain and merged[-1][2] == low:
            merged[-1] = (grain, merged[-1][1], high)
        else:
            merged.append((grain, low, high))
    corrections: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
    for i, (b, u) in enumerate(zip(boundaries, midnights, strict=True)):
        # [b, u) belongs to period i but lies in the days of period i-1; [u, b) the other way round.
        low, high, owner, holder = (b, u, i, i - 1) if b < u else (u, b, i - 1, i)
        for grain, first, stop in decompose(low, high, (QUARTER, HOUR)):
            for t in range(first, stop, SECONDS[grain]):
                corrections[(grain, t)] += [(p, sign) for p, sign in ((owner, 1), (holder, -1)) if 0 <= p < n]
    return Cover(merged, midnights, dict(corrections))


@lru_cache(maxsize=512)
def day_masks(start: int, end: int) -> dict[int, dict[int, int]]:
    """The whole UTC days [start, end) as {year: {month: bits}}, bit d-1 for day d of the month (not to be
    changed: the answer is shared)."""
    masks: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for t in range(start, end, SECONDS[DAY]):
        d = datetime.fromtimestamp(t, UTC)
        masks[d.year][d.month] |= 1 << (d.day - 1)
    return {year: dict(months) for year, months in masks.items()}


def days(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def period_key(day: date, granularity: str) -> date:
    """The local date that names the bucket of `granularity` holding `day` (weeks start on Monday)."""
    if granularity == "week":
        return day - timedelta(days=day.weekday())
    if granularity == "month":
        return day.replace(day=1)
    return day
