"""sign-ins and spent refresh tokens: revocation in the database

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 08:00:00

Signing out revokes a sign-in (the family every token of one login descends from), and a spent
refresh token is recorded by its jti; both used to live only in Redis, so a Redis wipe revived them.
"""

import sqlalchemy as sa
from alembic import op


revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "auth_sign_ins",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_auth_sign_ins_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_sign_ins")),
    )
    with op.batch_alter_table("auth_sign_ins", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_auth_sign_ins_last_issued_at"), ["last_issued_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_auth_sign_ins_user_id"), ["user_id"], unique=False)

    op.create_table(
        "auth_spent_refresh_tokens",
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("sign_in_id", sa.String(length=64), nullable=False),
        sa.Column("spent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("jti", name=op.f("pk_auth_spent_refresh_tokens")),
    )
    with op.batch_alter_table("auth_spent_refresh_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_auth_spent_refresh_tokens_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_auth_spent_refresh_tokens_sign_in_id"), ["sign_in_id"], unique=False)


def downgrade():
    with op.batch_alter_table("auth_spent_refresh_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_auth_spent_refresh_tokens_sign_in_id"))
        batch_op.drop_index(batch_op.f("ix_auth_spent_refresh_tokens_expires_at"))
    op.drop_table("auth_spent_refresh_tokens")
    with op.batch_alter_table("auth_sign_ins", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_auth_sign_ins_user_id"))
        batch_op.drop_index(batch_op.f("ix_auth_sign_ins_last_issued_at"))
    op.drop_table("auth_sign_ins")
