from __future__ import annotations

from marshmallow import Schema, fields, validate

from streampay.users.models import Role

USERNAME = validate.Regexp(r"^[A-Za-z0-9_.-]{3,32}$", error="3 to 32 characters: letters, digits, '_', '.' or '-'.")
ROLES = [r.value for r in Role]


class UserSchema(Schema):
    id = fields.UUID(required=True)
    email = fields.String(required=True)
    username = fields.String(required=True)
    role = fields.Function(lambda u: u.role.value, required=True, metadata={"enum": ROLES})
    is_active = fields.Boolean(required=True)
    display_name = fields.String(allow_none=True)
    bio = fields.String(allow_none=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)
    last_login_at = fields.DateTime(allow_none=True)


class ProfileUpdateSchema(Schema):
    username = fields.String(validate=USERNAME)
    display_name = fields.String(allow_none=True, validate=validate.Length(min=1, max=64))
    bio = fields.String(allow_none=True, validate=validate.Length(max=500))
    password = fields.String(validate=validate.Length(max=128), load_only=True)
    current_password = fields.String(validate=validate.Length(max=128), load_only=True)


class AdminUserUpdateSchema(Schema):
    role = fields.String(validate=validate.OneOf(ROLES))
    is_active = fields.Boolean()


class UserQuerySchema(Schema):
    search = fields.String(validate=validate.Length(max=100), metadata={"description": "Part of email or username."})
    role = fields.String(validate=validate.OneOf(ROLES))
    is_active = fields.Boolean()
