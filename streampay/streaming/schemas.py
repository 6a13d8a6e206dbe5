"""A session as the API and the events show it."""

from __future__ import annotations

from marshmallow import Schema, fields

from streampay.money import Amount
from streampay.streaming.models import SessionStatus


class SessionSchema(Schema):
    id = fields.UUID(required=True)
    content_id = fields.UUID(required=True)
    status = fields.Function(
        lambda s: s.status.value, required=True, metadata={"enum": [x.value for x in SessionStatus]}
    )
    end_reason = fields.String(allow_none=True)
    price_per_second = Amount(required=True)
    started_at = fields.DateTime(required=True)
    ended_at = fields.DateTime(allow_none=True)
    billed_seconds = fields.Function(lambda s: s.billed_ms // 1000, required=True, metadata={"type": "integer"})
    billed_ms = fields.Integer(required=True)
    charged = Amount(required=True)
    fee = Amount(required=True)
    held = Amount(required=True)
    max_spend = Amount(allow_none=True)
