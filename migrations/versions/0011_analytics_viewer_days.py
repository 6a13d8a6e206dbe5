"""analytics: viewers by day masks, covering indexes for the top lists

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 14:10:00

Unique viewers of whole UTC days come from one row per viewer and year with a day mask per month
(filled here from the per-day viewer rows, which go with the per-month ones); only quarter-hour
viewer rows remain, for the zone-shifted edges of a period. The two indexes the top lists read
carry the figures on PostgreSQL, so a year of an item's rows is read from the index alone.
"""

from collections import defaultdict
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

MONTHS = [f"m{m}" for m in range(1, 13)]
FIGURES = ["scope_id", "gross", "fee", "watch_ms", "sessions"]
DAY, MONTH = 3, 4


def upgrade():
    days = op.create_table(
        "analytics_viewer_days",
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("scope_id", sa.String(length=36), nullable=False),
        sa.Column("year", sa.SmallInteger(), nullable=False),
        sa.Column("viewer_id", sa.String(length=36), nullable=False),
        *(sa.Column(m, sa.Integer(), nullable=False) for m in MONTHS),
        sa.PrimaryKeyConstraint("scope", "scope_id", "year", "viewer_id", name=op.f("pk_analytics_viewer_days")),
    )
    conn = op.get_bind()
    masks = defaultdict(lambda: [0] * 12)
    found = conn.execute(sa.text("SELECT scope, scope_id, bucket, viewer_id FROM analytics_viewers WHERE grain = :g"), {"g": DAY})
    for scope, scope_id, bucket, viewer in found:
        d = datetime.fromtimestamp(bucket, UTC)
        masks[(scope, scope_id, d.year, viewer)][d.month - 1] |= 1 << (d.day - 1)
    rows = [
        {"scope": s, "scope_id": i, "year": y, "viewer_id": v, **dict(zip(MONTHS, m, strict=True))}
        for (s, i, y, v), m in masks.items()
    ]
    for n in range(0, len(rows), 5000):
        op.bulk_insert(days, rows[n : n + 5000])
    conn.execute(sa.text("DELETE FROM analytics_viewers WHERE grain IN (:d, :m)"), {"d": DAY, "m": MONTH})
    with op.batch_alter_table("analytics_rollups", schema=None) as batch_op:
        batch_op.drop_index("ix_analytics_rollups_owner")
        batch_op.drop_index("ix_analytics_rollups_grain")
        batch_op.create_index(
            "ix_analytics_rollups_owner", ["scope", "owner", "grain", "bucket"], postgresql_include=FIGURES
        )
        batch_op.create_index("ix_analytics_rollups_grain", ["scope", "grain", "bucket"], postgresql_include=FIGURES)


def downgrade():
    with op.batch_alter_table("analytics_rollups", schema=None) as batch_op:
        batch_op.drop_index("ix_analytics_rollups_grain")
        batch_op.drop_index("ix_analytics_rollups_owner")
        batch_op.create_index("ix_analytics_rollups_grain", ["scope", "grain", "bucket"], unique=False)
        batch_op.create_index("ix_analytics_rollups_owner", ["scope", "owner", "grain", "bucket"], unique=False)
    # Per-day and per-month viewer rows come back from the day masks; quarters never left.
    conn = op.get_bind()
    rows = set()
    for scope, scope_id, year, viewer, *months in conn.execute(
        sa.text(f"SELECT scope, scope_id, year, viewer_id, {', '.join(MONTHS)} FROM analytics_viewer_days")
    ):
        for month, bits in enumerate(months, start=1):
            if bits:
                rows.add((scope, scope_id, MONTH, int(datetime(year, month, 1, tzinfo=UTC).timestamp()), viewer))
            for day in range(31):
                if bits >> day & 1:
                    at = int(datetime(year, month, day + 1, tzinfo=UTC).timestamp())
                    rows.add((scope, scope_id, DAY, at, viewer))
    viewers = sa.table(
        "analytics_viewers", *(sa.column(c) for c in ("scope", "scope_id", "grain", "bucket", "viewer_id"))
    )
    keys = ("scope", "scope_id", "grain", "bucket", "viewer_id")
    listed = [dict(zip(keys, r, strict=True)) for r in sorted(rows)]
    for n in range(0, len(listed), 5000):
        op.bulk_insert(viewers, listed[n : n + 5000])
    op.drop_table("analytics_viewer_days")
