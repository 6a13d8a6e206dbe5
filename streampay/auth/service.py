"""Sign-up, sign-in, token rotation and sign-out."""

from __future__ import annotations

from sqlalchemy import select

from streampay.auth import tokens
from streampay.errors import Forbidden, Unauthorized
from streampay.extensions import db
from streampay.users import passwords
from streampay.users import service as users
from streampay.users.models import Role, User


def register(data: dict) -> dict:
    user = users.create_user(
        data["email"], data["username"], data["password"], Role(data["role"]), data.get("display_name")
    )
    return {**tokens.issue_pair(user), "user": user}


def login(email: str, password: str) -> dict:
    user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if not passwords.verify(user.password_hash if user else None, password):
        raise Unauthorized("Wrong email or password.")
    if not user.is_active:
        raise Forbidden("This account is deactivated.")
    users.record_login(user, password)
    return {**tokens.issue_pair(user), "user": user}


def refresh(user: User, payload: dict) -> dict:
    if not tokens.mark_rotated(payload):
        tokens.revoke(payload)
        raise Unauthorized("This refresh token was already used; sign in again.")
    return tokens.issue_pair(user, family=payload.get("fam"))


def logout(payload: dict) -> None:
    tokens.revoke(payload)
