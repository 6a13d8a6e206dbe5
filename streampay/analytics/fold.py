"""Fold the usage outbox into the rollups: a periodic job, never the checkpoint's transaction.

One transaction deletes a batch of usage rows (DELETE ... RETURNING) and adds their sums to the
rollups: a row is folded exactly once, however many folds run at once (a second DELETE of the
same rows waits for the first and then finds them gone). Checkpoints only ever insert usage rows,
so they contend on nothing; the rollup rows are written by the fold alone.
"""

from __future__ import annotations

import uuid
from collections import defaultdict

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite

from streampay.analytics import buckets
from streampay.analytics.models import RetentionBucket, Rollup, ViewerBucket
from streampay.content.models import Content
from streampay.extensions import db
from streampay.streaming.models import Usage

BATCH = 20_000
CHUNK = 10_000  # rows per call; SQLAlchemy pages them into multi-row INSERTs
VIEWER_GRAINS = (buckets.QUARTER, buckets.DAY, buckets.MONTH)
STEPS = 20  # retention steps of 5 %
PLATFORM = "platform"


def _insert(model):
    dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
    return dialect.insert(model)


def _upsert_sums(sums: dict) -> None:
    stmt = _insert(Rollup)
    stmt = stmt.on_conflict_do_update(
        index_elements=["scope", "scope_id", "grain", "bucket"],
        set_={c: Rollup.__table__.c[c] + stmt.excluded[c] for c in ("gross", "fee", "watch_ms", "sessions")},
    )
    rows = [
        {
            "scope": scope,
            "scope_id": scope_id,
            "grain": grain,
            "bucket": bucket,
            "owner": owner,
            "gross": v[0],
            "fee": v[1],
            "watch_ms": v[2],
            "sessions": v[3],
        }
        for (scope, scope_id, grain, bucket, owner), v in sorted(sums.items())
    ]
    _executemany(stmt, rows)


def _insert_viewers(seen: set) -> None:
    rows = [{"scope": s, "scope_id": i, "grain": g, "bucket": b, "viewer_id": v} for s, i, g, b, v in sorted(seen)]
    _executemany(_insert(ViewerBucket).on_conflict_do_nothing(), rows)


def _upsert_retention(counts: dict) -> None:
    stmt = _insert(RetentionBucket)
    stmt = stmt.on_conflict_do_update(
        index_elements=["content_id", "grain", "bucket", "step"],
        set_={"sessions": RetentionBucket.__table__.c.sessions + stmt.excluded.sessions},
    )
    rows = [
        {"content_id": c, "grain": g, "bucket": b, "step": s, "sessions": n}
        for (c, g, b, s), n in sorted(counts.items())
    ]
    _executemany(stmt, rows)


def _executemany(stmt, rows: list[dict]) -> None:
    """One statement, many rows: SQLAlchemy sends them as multi-row VALUES pages (insertmanyvalues)."""
    for start in range(0, len(rows), CHUNK):
        db.session.execute(stmt, rows[start : start + CHUNK])


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


def fold_batch(limit: int = BATCH) -> int:
    """Fold up to `limit` usage rows; returns how many. Commits."""
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
        if ended_ms is not None:
            ended.append((t, content, ended_ms))
    retention: dict = defaultdict(int)
    durations = _durations({content for _, content, _ in ended})
    for t, content, billed_ms in ended:
        step = step_of(billed_ms, durations.get(content))
        for grain in VIEWER_GRAINS:
            retention[(content, grain, buckets.floor(t, grain), step)] += 1
    _upsert_sums(sums)
    _insert_viewers(seen)
    _upsert_retention(retention)
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
