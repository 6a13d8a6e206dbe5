"""payout leases and refusal kinds

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 21:50:00

A batch is advanced by one run at a time (a lease on its row, checked on every write), and a
refused payout says whose problem the refusal was.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("payout_batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_owner", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "refusal",
                sa.Enum(
                    "recipient",
                    "batch",
                    name="payout_refusal",
                    native_enum=False,
                    create_constraint=True,
                    length=16,
                ),
                nullable=True,
            )
        )
    # Payouts refused before this revision: a single operation's code was the recipient's problem.
    op.execute(
        "UPDATE payouts SET refusal = CASE WHEN reason LIKE 'refused by the network: op!_%' ESCAPE '!' "
        "THEN 'recipient' ELSE 'batch' END WHERE reason LIKE 'refused by the network: %'"
    )


def downgrade():
    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.drop_constraint("payout_refusal", type_="check")
        batch_op.drop_column("refusal")
    with op.batch_alter_table("payout_batches", schema=None) as batch_op:
        batch_op.drop_column("lease_expires_at")
        batch_op.drop_column("lease_owner")
