"""Payout transactions as the network sees them: who signs, whose sequence number, which payments."""

from __future__ import annotations

from flask import current_app
from stellar_sdk import Account as StellarAccount
from stellar_sdk import Keypair, TransactionBuilder

from streampay import money
from streampay.errors import DomainError
from streampay.stellar import horizon

MAX_OPS = 100  # payment operations per transaction, the network's limit


def sources() -> list[Keypair]:
    """The accounts whose sequence numbers payout transactions use: the channels, or custody alone."""
    channels = current_app.config.get("STELLAR_CHANNEL_SECRETS") or []
    return [Keypair.from_secret(secret) for secret in channels] or [horizon.custody()]


def source_for(address: str) -> Keypair:
    for keypair in sources():
        if keypair.public_key == address:
            return keypair
    raise DomainError(f"A batch was formed for the channel account {address}, which is no longer configured.")


def sign(source: Keypair, payments: list[tuple[str, int]], sequence: int, max_time: int):
    """One transaction paying (destination, stroops) pairs from custody, signed.

    `source` is the transaction's source: custody itself, or a channel account whose sequence
    number it uses while custody remains the source of every payment (and signs for them).
    With STELLAR_FEE_BUMP the custody account wraps it and pays the fee.
    """
    custody = horizon.custody()
    builder = TransactionBuilder(
        StellarAccount(source.public_key, sequence - 1), horizon.passphrase(), base_fee=horizon.base_fee()
    )
    builder.add_time_bounds(0, max_time)
    pay_in = horizon.asset()
    op_source = None if source.public_key == custody.public_key else custody.public_key
    for destination, stroops in payments:
        builder.append_payment_op(destination, pay_in, money.format(stroops), source=op_source)
    envelope = builder.build()
    envelope.sign(source)
    if op_source is not None:
        envelope.sign(custody)
    if current_app.config["STELLAR_FEE_BUMP"]:
        envelope = TransactionBuilder.build_fee_bump_transaction(
            custody, horizon.base_fee(), envelope, horizon.passphrase()
        )
        envelope.sign(custody)
    return envelope
