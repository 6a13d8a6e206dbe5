"""Bucket arithmetic in UTC epoch seconds: grains, a period's decomposition, a zone's days.

Pure functions, no database: the fold and the queries share them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

QUARTER, HOUR, DAY, MONTH = 1, 2, 3, 4
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


def local_midnight(day: date, zone: ZoneInfo) -> int:
    """The UTC epoch second at which `day` begins in `zone`, on the quarter hour."""
    t = int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp())
    return t - t % SECONDS[QUARTER]


def offset(t: int, zone: ZoneInfo) -> int:
    """The zone's UTC offset at epoch second `t`, in seconds."""
    return int(datetime.fromtimestamp(t, zone).utcoffset().total_seconds())


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


def grain_for(runs: list[tuple[int, int, int]]) -> int:
    """The coarsest grain whose buckets never straddle a local midnight in these runs."""
    offsets = {o for _, _, o in runs}
    if offsets == {0}:
        return DAY
    if all(o % 3600 == 0 for o in offsets) and all(t % 3600 == 0 for run in runs for t in run[:2]):
        return HOUR
    return QUARTER


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
