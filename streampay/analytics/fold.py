"""Fold the usage outbox into the rollups: a periodic job, never the checkpoint's transaction.

One transaction deletes a batch of usage rows (DELETE ... RETURNING) and adds their sums to the
rollups: a row is folded exactly once, however many folds run at once (a second DELETE of the
same rows waits for the first and then finds them gone). Checkpoints only ever insert usage rows,
so they contend on nothing; the rollup rows are written by the fold alone.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime

from sqlalchemy import delete, select, text

from streampay.analytics import buckets
from streampay.content.models import Content
from streampay.extensions import db
from streampay.streaming.models import Usage

BATCH = 20_000
CHUNK = 1_000  # rows per INSERT statement
VIEWER_GRAINS = (buckets.QUARTER,)  # the edges of a period; its whole UTC days are in analytics_viewer_days
RETENTION_GRAINS = (buckets.QUARTER, buckets.DAY, buckets.MONTH)
MONTHS = tuple(f"m{m}" for m in range(1, 13))
STEPS = 20  # retention steps of 5 %
PLATFORM = "platform"
LOCK = 0x616E616C  # PostgreSQL advisory lock: folds share it, a rebuild holds it alone


ADD_SUMS = ", ".join(f"{c} = analytics_rollups.{c} + excluded.{c}" for c in ("gross", "fee", "watch_ms", "sessions"))
UPSERTS = {
    # table, columns, what a conflict does: the same SQL on PostgreSQL and SQLite
    "sums": (
        "analytics_rollups",
        ("scope", "scope_id", "grain", "bucket", "owner", "gross", "fee", "watch_ms", "sessions"),
        f"ON CONFLICT (scope, scope_id, grain, bucket) DO UPDATE SET {ADD_SUMS}",
    ),
    "viewers": (
        "analytics_viewers",
        ("scope", "scope_id", "grain", "bucket", "viewer_id"),
        "ON CONFLICT DO NOTHING",
    ),
    "days": (
        "analytics_viewer_days",
        ("scope", "scope_id", "year", "viewer_id", *MONTHS),
        "ON CONFLICT (scope, scope_id, year, viewer_id) DO UPDATE SET "
        + ", ".join(f"{m} = analytics_viewer_days.{m} | excluded.{m}" for m in MONTHS),
    ),
    "retention": (
        "analytics_retention",
        ("content_id", "grain", "bucket", "step", "sessions"),
        "ON CONFLICT (content_id, grain, bucket, step) DO UPDATE SET sessions = analytics_retention.sessions"
        " + excluded.sessions",
    ),
}


def _upsert(kind: str, rows: list[tuple]) -> None:
    """Many rows a statement: psycopg2's execute_values on PostgreSQL (SQLAlchemy's executemany sent a
    statement per row for INSERT ... ON CONFLICT: 150 s for 20,000 usage rows), executemany on SQLite."""
    table, columns, conflict = UPSERTS[kind]
    cursor = db.session.connection().connection.driver_connection.cursor()
    head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES"
    try:
        if db.engine.dialect.name == "postgresql":
            from psycopg2.extras import execute_values

            execute_values(cursor, f"{head} %s {conflict}", rows, page_size=CHUNK)
        else:
            cursor.executemany(f"{head} ({', '.join('?' * len(columns))}) {conflict}", rows)
    finally:
        cursor.close()


def _durations(content_ids: set) -> dict:
    if not content_ids:
        return {}
    found = db.session.execute(
        select(Content.id, Content.duration_ms).where(Content.id.in_([uuid.UUID(c) for c in content_ids]))
    )
    return {str(cid): duration for cid, duration in found}


def step_of(billed_ms: int, duration_ms: int | None) -> int:
    """How far a session got, in 5 % steps of the item (0..20): billed time, the server's truth."""
    if not duration_ms or duration_ms <= 0:
        return STEPS
    return min(STEPS, billed_ms * STEPS // duration_ms)


def _may_fold() -> bool:
    """False while a rebuild holds the rollups (PostgreSQL): the outbox waits for the next fold."""
    if db.engine.dialect.name != "postgresql":
        return True
    return db.session.scalar(text("SELECT pg_try_advisory_xact_lock_shared(:k)"), {"k": LOCK})


def fold_batch(limit: int = BATCH) -> int:
    """Fold up to `limit` usage rows; returns how many. Commits."""
    if not _may_fold():
        db.session.rollback()
        return 0
    oldest = select(Usage.id).order_by(Usage.id).limit(limit).scalar_subquery()
    batch = db.session.execute(
        delete(Usage)
        .where(Usage.id.in_(oldest))
        .returning(
            Usage.at_ms,
            Usage.content_id,
            Usage.creator_id,
            Usage.viewer_id,
            Usage.sessions,
            Usage.watch_ms,
            Usage.gross,
            Usage.fee,
            Usage.ended_ms,
        )
    ).all()
    if not batch:
        db.session.rollback()
        return 0
    sums: dict = defaultdict(lambda: [0, 0, 0, 0])
    seen: set = set()
    days: dict = defaultdict(lambda: [0] * 12)
    dates: dict = {}
    ended = []
    for at_ms, content_id, creator_id, viewer_id, sessions, watch_ms, gross, fee, ended_ms in batch:
        t = at_ms // 1000
        content, creator, viewer = str(content_id), str(creator_id), str(viewer_id)
        scopes = (("content", content, creator), ("creator", creator, ""), ("platform", PLATFORM, ""))
        for grain in buckets.GRAINS:
            bucket = buckets.floor(t, grain)
            for scope, scope_id, owner in scopes:
                v = sums[(scope, scope_id, grain, bucket, owner)]
                v[0] += gross
                v[1] += fee
                v[2] += watch_ms
                v[3] += sessions
                if grain in VIEWER_GRAINS:
                    seen.add((scope, scope_id, grain, bucket, viewer))
        day = t - t % 86400
        if day not in dates:
            dates[day] = datetime.fromtimestamp(day, UTC)
        d = dates[day]
        for scope, scope_id, _ in scopes:
            days[(scope, scope_id, d.year, viewer)][d.month - 1] |= 1 << (d.day - 1)
        if ended_ms is not None:
            ended.append((t, content, ended_ms))
    retention: dict = defaultdict(int)
    durations = _durations({content for _, content, _ in ended})
    for t, content, billed_ms in ended:
        step = step_of(billed_ms, durations.get(content))
        for grain in RETENTION_GRAINS:
            retention[(content, grain, buckets.floor(t, grain), step)] += 1
    _upsert("sums", [(*key, *v) for key, v in sorted(sums.items())])
    _upsert("viewers", sorted(seen))
    _upsert("days", [(*key, *masks) for key, masks in sorted(days.items())])
    _upsert("retention", [(*key, n) for key, n in sorted(retention.items())])
    db.session.commit()
    return len(batch)


def fold(limit: int = BATCH, max_batches: int = 1000) -> int:
    """Fold the outbox until it is empty (or `max_batches` ran); returns the rows folded."""
    total = 0
    for _ in range(max_batches):
        n = fold_batch(limit)
        total += n
        if n < limit:
            break
    return total
