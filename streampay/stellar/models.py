"""What the platform knows of the chain: deposits seen, payouts owed, and every envelope it signed."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from streampay.dbtypes import StateMachine, UTCDateTime, str_enum, utcnow
from streampay.extensions import db


class Cursor(db.Model):
    """Where a Horizon stream was read up to (e.g. the custody account's payments)."""

    __tablename__ = "stellar_cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class DepositStatus(enum.StrEnum):
    CREDITED = "credited"
    UNMATCHED = "unmatched"
    ASSIGNED = "assigned"


class Deposit(StateMachine, db.Model):
    __tablename__ = "stellar_deposits"
    __table_args__ = (Index("ix_stellar_deposits_created", "created_at"),)
    TRANSITIONS = {
        DepositStatus.CREDITED: set(),
        DepositStatus.UNMATCHED: {DepositStatus.ASSIGNED},
        DepositStatus.ASSIGNED: set(),
    }

    id: Mapped[int] = mapped_column(primary_key=True)
    # Horizon's operation id: a payment is credited once, whatever replays the scan.
    operation_id: Mapped[str] = mapped_column(String(32), unique=True)
    tx_hash: Mapped[str] = mapped_column(String(64))
    from_address: Mapped[str] = mapped_column(String(69))
    amount: Mapped[int] = mapped_column(BigInteger)
    memo: Mapped[str | None] = mapped_column(String(64))
    muxed_id: Mapped[str | None] = mapped_column(String(20))
    status: Mapped[DepositStatus] = mapped_column(str_enum(DepositStatus, "deposit_status"))
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Refusal(enum.StrEnum):
    """Whose problem a network refusal is: it decides whether the next run may pay again."""

    RECIPIENT = "recipient"  # no account, no trustline, line full: waits for the address to be proven again
    BATCH = "batch"  # custody underfunded, bad auth, fees: the creator is eligible again at once


class PayoutStatus(enum.StrEnum):
    IN_FLIGHT = "in_flight"
    PAID = "paid"
    # Refused by the network for this recipient (no account, no trustline...): returned once
    # no envelope that still contains it can land.
    REFUSED = "refused"
    RETURNED = "returned"


class Payout(StateMachine, db.Model):
    __tablename__ = "payouts"
    __table_args__ = (
        Index("ix_payouts_creator", "creator_id", "created_at"),
        Index("ix_payouts_batch", "batch_id"),
        Index("ix_payouts_status_changed", "status", "status_changed_at"),
    )
    TRANSITIONS = {
        PayoutStatus.IN_FLIGHT: {PayoutStatus.PAID, PayoutStatus.REFUSED, PayoutStatus.RETURNED},
        # An older envelope that still held a refused payment could, in principle, land: then it was paid.
        PayoutStatus.REFUSED: {PayoutStatus.RETURNED, PayoutStatus.PAID},
        PayoutStatus.PAID: set(),
        PayoutStatus.RETURNED: set(),
    }

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    creator_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    destination: Mapped[str] = mapped_column(String(69))
    amount: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[PayoutStatus] = mapped_column(str_enum(PayoutStatus, "payout_status"))
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("payout_batches.id"))
    reason: Mapped[str | None] = mapped_column(String(200))
    refusal: Mapped[Refusal | None] = mapped_column(str_enum(Refusal, "payout_refusal"))
    tx_hash: Mapped[str | None] = mapped_column(String(64))
    ledger: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BatchStatus(enum.StrEnum):
    OPEN = "open"  # an envelope may be in flight; not settled either way
    CONFIRMED = "confirmed"
    CLOSED = "closed"  # nothing of it can land any more; its payouts were returned or moved on


class PayoutBatch(StateMachine, db.Model):
    __tablename__ = "payout_batches"
    TRANSITIONS = {
        BatchStatus.OPEN: {BatchStatus.CONFIRMED, BatchStatus.CLOSED},
        BatchStatus.CONFIRMED: set(),
        BatchStatus.CLOSED: set(),
    }

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[BatchStatus] = mapped_column(str_enum(BatchStatus, "batch_status"))
    source_account: Mapped[str] = mapped_column(String(56))
    tx_hash: Mapped[str | None] = mapped_column(String(64))
    ledger: Mapped[int | None] = mapped_column(Integer)
    # The run advancing this batch, until when: one run at a time, and every write it makes checks
    # that it still holds the lease (a fence), so a run that lost it can change nothing.
    lease_owner: Mapped[str | None] = mapped_column(String(36))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PayoutAttempt(db.Model):
    """One signed envelope of a batch, stored before it is ever sent."""

    __tablename__ = "payout_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("payout_batches.id"), index=True)
    tx_hash: Mapped[str] = mapped_column(String(64), unique=True)
    envelope_xdr: Mapped[str] = mapped_column(Text)
    sequence: Mapped[int] = mapped_column(BigInteger)
    max_time: Mapped[int] = mapped_column(BigInteger)
    payout_ids: Mapped[list[str]] = mapped_column(JSON)
    last_result: Mapped[str | None] = mapped_column(String(200))
    submissions: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
