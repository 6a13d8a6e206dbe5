"""JWT issue, rotation and revocation on flask-jwt-extended, with the revocation list in Redis.

Every token carries `fam`, the id of the login it descends from. Logout revokes the whole
family; a refresh token works once, and presenting a used one revokes its family too
(someone else holds a copy).
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from datetime import UTC, datetime

from flask import Flask, current_app
from flask_jwt_extended import create_access_token, create_refresh_token

from streampay.errors import error_body
from streampay.extensions import db, jwt, redis_client
from streampay.users.models import User

_signing_refresh: ContextVar[bool] = ContextVar("signing_refresh", default=False)
ROTATED = b"rotated"


def _jti_key(jti: str) -> str:
    return f"auth:revoked:jti:{jti}"


def _family_key(family: str) -> str:
    return f"auth:revoked:fam:{family}"


def issue_pair(user: User, family: str | None = None) -> dict:
    claims = {"fam": family or uuid.uuid4().hex}
    identity = str(user.id)
    access = create_access_token(identity=identity, additional_claims=claims)
    token = _signing_refresh.set(True)
    try:
        refresh = create_refresh_token(identity=identity, additional_claims=claims)
    finally:
        _signing_refresh.reset(token)
    expires_in = int(current_app.config["JWT_ACCESS_TOKEN_EXPIRES"].total_seconds())
    return {"access_token": access, "refresh_token": refresh, "token_type": "Bearer", "expires_in": expires_in}


def _seconds_left(payload: dict) -> int:
    exp = payload.get("exp")
    if exp is None:
        return int(current_app.config["JWT_REFRESH_TOKEN_EXPIRES"].total_seconds())
    return max(1, int(exp - datetime.now(UTC).timestamp()) + 1)


def _family_ttl() -> int:
    # No token of a family outlives the newest refresh token, issued at the latest now.
    return int(current_app.config["JWT_REFRESH_TOKEN_EXPIRES"].total_seconds()) + 1


def mark_rotated(payload: dict) -> bool:
    """Spend a refresh token; False when it was already spent (a reuse)."""
    return bool(redis_client().set(_jti_key(payload["jti"]), ROTATED, nx=True, ex=_seconds_left(payload)))


def revoke(payload: dict) -> None:
    """Revoke this token and every token of its login (logout, or a detected reuse)."""
    pipe = redis_client().pipeline()
    pipe.set(_jti_key(payload["jti"]), b"revoked", ex=_seconds_left(payload))
    if payload.get("fam"):
        pipe.set(_family_key(payload["fam"]), b"revoked", ex=_family_ttl())
    pipe.execute()


def _is_revoked(_header: dict, payload: dict) -> bool:
    by_jti, by_family = redis_client().mget(_jti_key(payload["jti"]), _family_key(payload.get("fam") or "-"))
    if by_jti == ROTATED and payload.get("type") == "refresh":
        revoke(payload)
    return by_jti is not None or by_family is not None


def _load_user(_header: dict, payload: dict) -> User | None:
    try:
        user_id = uuid.UUID(payload["sub"])
    except (KeyError, ValueError, TypeError):
        return None
    user = db.session.get(User, user_id)
    return user if user is not None and user.is_active else None


def _unauthorized(message: str):
    return error_body(401, "Unauthorized", message), 401, {"WWW-Authenticate": "Bearer"}


def init_app(app: Flask) -> None:
    jwt.init_app(app)
    jwt.encode_key_loader(
        lambda _identity: current_app.config["JWT_REFRESH_SECRET" if _signing_refresh.get() else "JWT_SECRET_KEY"]
    )
    jwt.decode_key_loader(
        lambda _header, payload: current_app.config[
            "JWT_REFRESH_SECRET" if payload.get("type") == "refresh" else "JWT_SECRET_KEY"
        ]
    )
    jwt.token_in_blocklist_loader(_is_revoked)
    jwt.user_lookup_loader(_load_user)
    jwt.unauthorized_loader(lambda reason: _unauthorized(f"Authentication required: {reason}."))
    jwt.invalid_token_loader(lambda reason: _unauthorized(f"Invalid token: {reason}."))
    jwt.expired_token_loader(lambda _h, _p: _unauthorized("The token has expired; refresh it or sign in again."))
    jwt.revoked_token_loader(lambda _h, _p: _unauthorized("The token has been revoked; sign in again."))
    jwt.needs_fresh_token_loader(lambda _h, _p: _unauthorized("A fresh sign-in is required."))
    jwt.token_verification_failed_loader(lambda _h, _p: _unauthorized("The token failed verification."))
    jwt.user_lookup_error_loader(lambda _h, _p: _unauthorized("The account is deactivated or no longer exists."))


def user_from_token(encoded: str) -> tuple[User, dict]:
    """For callers outside an HTTP request (a WebSocket `auth` event): the active user an access token names."""
    from flask_jwt_extended import decode_token
    from jwt import PyJWTError

    from streampay.errors import Unauthorized

    try:
        payload = decode_token(encoded)
    except PyJWTError as exc:
        raise Unauthorized(f"Invalid token: {exc}.") from exc
    except Exception as exc:  # flask-jwt-extended's own decode errors
        raise Unauthorized("Invalid token.") from exc
    if payload.get("type") != "access":
        raise Unauthorized("An access token is required.")
    if _is_revoked({}, payload):
        raise Unauthorized("The token has been revoked; sign in again.")
    user = _load_user({}, payload)
    if user is None:
        raise Unauthorized("The account is deactivated or no longer exists.")
    return user, payload
