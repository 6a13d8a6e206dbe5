"""A payout as the API shows it: in GET /payouts and in the payout events."""

from __future__ import annotations

from marshmallow import Schema, fields

from streampay.money import Amount


class PayoutSchema(Schema):
    id = fields.UUID(required=True)
    amount = Amount(required=True)
    status = fields.Function(lambda p: p.status.value, required=True)
    destination = fields.String(required=True)
    tx_hash = fields.String(allow_none=True)
    ledger = fields.Integer(allow_none=True)
    reason = fields.String(allow_none=True)
    refusal = fields.Function(
        lambda p: p.refusal.value if p.refusal else None,
        allow_none=True,
        metadata={
            "description": "Whose problem a network refusal was: `recipient` (fix the address, then prove it "
            "again) or `batch` (paid again at the next run).",
            "enum": ["recipient", "batch", None],
        },
    )
    created_at = fields.DateTime(required=True)
