"""Double-entry ledger: accounts, transactions, entries. Amounts are integer stroops.

Sign convention: an entry's amount is what the platform owes that account's holder, so a
viewer wallet, creator earnings and platform fees grow positive, and custody (what the
platform holds on-chain) grows negative as deposits arrive. Every transaction sums to zero.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from streampay.dbtypes import UTCDateTime, str_enum, utcnow
from streampay.extensions import db


class AccountKind(enum.StrEnum):
    VIEWER_WALLET = "viewer_wallet"
    CREATOR_EARNINGS = "creator_earnings"
    PLATFORM_FEES = "platform_fees"
    CUSTODY = "custody"
    PAYOUTS_IN_FLIGHT = "payouts_in_flight"
    UNMATCHED_DEPOSITS = "unmatched_deposits"
    # Operator credits and debits (promotions, corrections) are funded from here.
    ADJUSTMENTS = "adjustments"


PER_USER = {AccountKind.VIEWER_WALLET, AccountKind.CREATOR_EARNINGS}


class Account(db.Model):
    __tablename__ = "ledger_accounts"
    __table_args__ = (
        UniqueConstraint("kind", "owner", name="uq_ledger_accounts_kind_owner"),
        # The database, not only Python, forbids a wallet below zero or holds beyond its balance.
        CheckConstraint("kind <> 'viewer_wallet' OR (held >= 0 AND balance >= held)", name="wallet_covered"),
        CheckConstraint("kind = 'viewer_wallet' OR held = 0", name="holds_only_on_wallets"),
        CheckConstraint("kind <> 'creator_earnings' OR balance >= 0", name="earnings_non_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[AccountKind] = mapped_column(str_enum(AccountKind, "account_kind", length=24))
    # NULL for the platform's own accounts (fees, custody, in flight, unmatched, adjustments).
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    # The user's id, or "platform": unique with kind (NULLs would not be, on PostgreSQL).
    owner: Mapped[str] = mapped_column(String(36))
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    held: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Transaction(db.Model):
    __tablename__ = "ledger_transactions"

    id: Mapped[int] = mapped_column(primary_key=True)
    # One posting per key, enforced by the database: a retried job or request never posts twice.
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(String(500))
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    details: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    entries: Mapped[list[Entry]] = relationship(back_populates="transaction", lazy="selectin")


class Entry(db.Model):
    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="amount_non_zero"),
        Index("ix_ledger_entries_account", "account_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("ledger_transactions.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    transaction: Mapped[Transaction] = relationship(back_populates="entries")
    account: Mapped[Account] = relationship(lazy="joined")
