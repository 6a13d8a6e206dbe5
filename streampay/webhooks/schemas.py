from __future__ import annotations

from marshmallow import Schema, fields, validate

from streampay.events.models import EVENT_TYPES

URL = validate.And(validate.URL(schemes={"http", "https"}, require_tld=False), validate.Length(max=2048))


class EndpointCreateSchema(Schema):
    url = fields.String(required=True, validate=URL)
    event_types = fields.List(
        fields.String(validate=validate.OneOf(EVENT_TYPES)),
        required=True,
        validate=validate.Length(min=1, max=len(EVENT_TYPES)),
        metadata={"description": "The events this endpoint hears."},
    )
    description = fields.String(allow_none=True, validate=[validate.Length(max=200), validate.Regexp(r"^[^\x00]*$")])
    platform = fields.Boolean(
        load_default=False, metadata={"description": "Admins: hear every user's events, and deposit.unmatched."}
    )


class EndpointUpdateSchema(Schema):
    url = fields.String(validate=URL)
    event_types = fields.List(
        fields.String(validate=validate.OneOf(EVENT_TYPES)), validate=validate.Length(min=1, max=len(EVENT_TYPES))
    )
    description = fields.String(allow_none=True, validate=[validate.Length(max=200), validate.Regexp(r"^[^\x00]*$")])
    enabled = fields.Boolean(metadata={"description": "Switch it back on after it was disabled, or off."})


class EndpointSchema(Schema):
    id = fields.UUID(required=True)
    url = fields.String(required=True)
    event_types = fields.List(fields.String(), required=True)
    description = fields.String(allow_none=True)
    platform = fields.Boolean(required=True)
    enabled = fields.Boolean(required=True)
    disabled_reason = fields.String(allow_none=True)
    consecutive_failures = fields.Integer(required=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class EndpointWithSecretSchema(EndpointSchema):
    secret = fields.String(
        required=True,
        metadata={"description": "Verify signatures with it (any Standard Webhooks library); shown only here."},
    )


class DeliverySchema(Schema):
    id = fields.Integer(required=True)
    event_id = fields.String(required=True)
    event_type = fields.Function(lambda d: d.event.type, required=True)
    status = fields.Function(
        lambda d: d.status.value, required=True, metadata={"enum": ["pending", "succeeded", "failed"]}
    )
    attempts = fields.Integer(required=True)
    response_code = fields.Integer(allow_none=True)
    duration_ms = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)
    created_at = fields.DateTime(required=True)
    last_attempt_at = fields.DateTime(allow_none=True)
    delivered_at = fields.DateTime(allow_none=True)
