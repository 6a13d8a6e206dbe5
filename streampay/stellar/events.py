"""The payout and deposit events, as the API shows the payout or deposit; emitted inside the caller's transaction."""

from __future__ import annotations

from marshmallow import Schema, fields

from streampay.dbtypes import utcnow
from streampay.events import outbox
from streampay.money import Amount
from streampay.stellar.models import Deposit, Payout, Refusal
from streampay.stellar.schemas import PayoutSchema

# What to do about a refused payout, by whose problem the refusal was.
FIXES = {
    Refusal.RECIPIENT: "Your payout address cannot receive this payment: check that the account exists "
    "and trusts the asset, then prove the address again (SEP-10). The amount is back in your earnings.",
    Refusal.BATCH: "The platform could not send this batch; nothing to do on your side: the amount is "
    "back in your earnings and goes out with the next payout run.",
    None: "The amount is back in your earnings and goes out with the next payout run.",
}


class DepositEventSchema(Schema):
    operation_id = fields.String(required=True)
    tx_hash = fields.String(required=True)
    from_address = fields.String(required=True)
    amount = Amount(required=True)
    memo = fields.String(allow_none=True)
    muxed_id = fields.String(allow_none=True)
    status = fields.Function(lambda d: d.status.value, required=True)
    user_id = fields.UUID(allow_none=True)
    created_at = fields.DateTime(required=True)


def payout_paid(payout: Payout) -> None:
    outbox.emit("payout.paid", PayoutSchema().dump(payout), payout.creator_id)


def payout_refused(payout: Payout) -> None:
    data = {**PayoutSchema().dump(payout), "what_to_do": FIXES.get(payout.refusal, FIXES[None])}
    outbox.emit("payout.refused", data, payout.creator_id)


def deposit_seen(deposit: Deposit) -> None:
    deposit.created_at = deposit.created_at or utcnow()
    kind = "deposit.credited" if deposit.user_id else "deposit.unmatched"
    outbox.emit(kind, DepositEventSchema().dump(deposit), deposit.user_id)
