"""a session knows its media's duration

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 08:00:00

Billed time never runs past the end of the media: the session keeps the duration it started with.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("streaming_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("media_ms", sa.BigInteger(), nullable=True))


def downgrade():
    with op.batch_alter_table("streaming_sessions", schema=None) as batch_op:
        batch_op.drop_column("media_ms")
