from __future__ import annotations

from marshmallow import Schema, fields, validate

from streampay.users.models import Role
from streampay.users.schemas import USERNAME, Text, UserSchema


class RegisterSchema(Schema):
    email = fields.Email(required=True, validate=validate.Length(max=254))
    username = fields.String(required=True, validate=USERNAME)
    password = fields.String(required=True, validate=validate.Length(max=128), load_only=True)
    role = fields.String(
        load_default=Role.VIEWER.value, validate=validate.OneOf([Role.VIEWER.value, Role.CREATOR.value])
    )
    display_name = Text(validate=validate.Length(min=1, max=64))


class LoginSchema(Schema):
    email = fields.Email(required=True, validate=validate.Length(max=254))
    password = fields.String(required=True, validate=validate.Length(min=1, max=128), load_only=True)


class TokenPairSchema(Schema):
    access_token = fields.String(required=True)
    refresh_token = fields.String(required=True)
    token_type = fields.String(required=True, metadata={"example": "Bearer"})
    expires_in = fields.Integer(required=True, metadata={"description": "Seconds the access token lives."})


class AuthResultSchema(TokenPairSchema):
    user = fields.Nested(UserSchema, required=True)


class LogoutResultSchema(Schema):
    success = fields.Boolean(required=True)
