"""analytics rollups

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 07:42:36

The usage outbox a session appends to (start, charges, end), the rollups a periodic job folds it
into (per content, creator and platform, per UTC quarter hour, hour, day and month), exact unique
viewers and retention steps; and indexes on the times that deposits, payouts and users are read by.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "analytics_retention",
        sa.Column("content_id", sa.String(length=36), nullable=False),
        sa.Column("grain", sa.SmallInteger(), nullable=False),
        sa.Column("bucket", sa.BigInteger(), nullable=False),
        sa.Column("step", sa.SmallInteger(), nullable=False),
        sa.Column("sessions", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("content_id", "grain", "bucket", "step", name=op.f("pk_analytics_retention")),
    )
    op.create_table(
        "analytics_rollups",
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("scope_id", sa.String(length=36), nullable=False),
        sa.Column("grain", sa.SmallInteger(), nullable=False),
        sa.Column("bucket", sa.BigInteger(), nullable=False),
        sa.Column("owner", sa.String(length=36), nullable=False),
        sa.Column("gross", sa.BigInteger(), nullable=False),
        sa.Column("fee", sa.BigInteger(), nullable=False),
        sa.Column("watch_ms", sa.BigInteger(), nullable=False),
        sa.Column("sessions", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "scope_id", "grain", "bucket", name=op.f("pk_analytics_rollups")),
    )
    with op.batch_alter_table("analytics_rollups", schema=None) as batch_op:
        batch_op.create_index("ix_analytics_rollups_grain", ["scope", "grain", "bucket"], unique=False)
        batch_op.create_index("ix_analytics_rollups_owner", ["scope", "owner", "grain", "bucket"], unique=False)

    op.create_table(
        "analytics_viewers",
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("scope_id", sa.String(length=36), nullable=False),
        sa.Column("grain", sa.SmallInteger(), nullable=False),
        sa.Column("bucket", sa.BigInteger(), nullable=False),
        sa.Column("viewer_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("scope", "scope_id", "grain", "bucket", "viewer_id", name=op.f("pk_analytics_viewers")),
    )
    op.create_table(
        "streaming_usage",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("content_id", sa.Uuid(), nullable=False),
        sa.Column("creator_id", sa.Uuid(), nullable=False),
        sa.Column("viewer_id", sa.Uuid(), nullable=False),
        sa.Column("sessions", sa.Integer(), nullable=False),
        sa.Column("watch_ms", sa.BigInteger(), nullable=False),
        sa.Column("gross", sa.BigInteger(), nullable=False),
        sa.Column("fee", sa.BigInteger(), nullable=False),
        sa.Column("ended_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_streaming_usage")),
    )
    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.create_index("ix_payouts_status_changed", ["status", "status_changed_at"], unique=False)

    with op.batch_alter_table("stellar_deposits", schema=None) as batch_op:
        batch_op.create_index("ix_stellar_deposits_created", ["created_at"], unique=False)

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index("ix_users_created", ["created_at"], unique=False)


def downgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index("ix_users_created")

    with op.batch_alter_table("stellar_deposits", schema=None) as batch_op:
        batch_op.drop_index("ix_stellar_deposits_created")

    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.drop_index("ix_payouts_status_changed")

    op.drop_table("streaming_usage")
    op.drop_table("analytics_viewers")
    with op.batch_alter_table("analytics_rollups", schema=None) as batch_op:
        batch_op.drop_index("ix_analytics_rollups_owner")
        batch_op.drop_index("ix_analytics_rollups_grain")

    op.drop_table("analytics_rollups")
    op.drop_table("analytics_retention")
