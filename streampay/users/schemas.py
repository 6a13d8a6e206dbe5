from __future__ import annotations

from marshmallow import Schema, fields, validate

from streampay.users.models import Role

USERNAME = validate.Regexp(r"^[A-Za-z0-9_.-]{3,32}$", error="3 to 32 characters: letters, digits, '_', '.' or '-'.")
EMAIL = validate.And(validate.Email(), validate.Length(max=254))
ROLES = [r.value for r in Role]


# PostgreSQL text cannot hold NUL: refuse it as bad input (and say so in the document), not as a 500.
NO_NUL = validate.Regexp(r"^[^\x00]*$", error="Must not contain NUL characters.")


class Text(fields.String):
    """Free text that any of our databases can store."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.validators.append(NO_NUL)


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
    stellar_address = fields.String(allow_none=True, metadata={"description": "Payout address proven by SEP-10."})
    stellar_verified_at = fields.DateTime(allow_none=True)
    email_notifications = fields.Nested(
        lambda: EmailNotificationsSchema(), metadata={"description": "Which mail you get; each kind can be off."}
    )


class EmailNotificationsSchema(Schema):
    balance_low = fields.Boolean(metadata={"description": "When your balance runs low (at most daily)."})
    payout_sent = fields.Boolean(metadata={"description": "When a payout lands on your Stellar account."})
    payout_refused = fields.Boolean(metadata={"description": "When a payout is refused, with what to fix."})


class ProfileUpdateSchema(Schema):
    username = fields.String(validate=USERNAME)
    display_name = Text(allow_none=True, validate=validate.Length(min=1, max=64))
    bio = Text(allow_none=True, validate=validate.Length(max=500))
    password = fields.String(validate=validate.Length(max=128), load_only=True)
    current_password = fields.String(validate=validate.Length(max=128), load_only=True)
    email_notifications = fields.Nested(EmailNotificationsSchema)


class AdminUserUpdateSchema(Schema):
    role = fields.String(validate=validate.OneOf(ROLES))
    is_active = fields.Boolean()


class UserQuerySchema(Schema):
    search = Text(validate=validate.Length(max=100), metadata={"description": "Part of email or username."})
    role = fields.String(validate=validate.OneOf(ROLES))
    is_active = fields.Boolean()
