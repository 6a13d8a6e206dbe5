from __future__ import annotations

from flask_jwt_extended import current_user, get_jwt
from flask_smorest import Blueprint

from streampay.auth import service
from streampay.auth.schemas import (
    AuthResultSchema,
    LoginSchema,
    LogoutResultSchema,
    RegisterSchema,
    TokenPairSchema,
)
from streampay.extensions import limiter
from streampay.users.access import PUBLIC, auth_rate_limit, auth_required
from streampay.users.schemas import UserSchema

blp = Blueprint("auth", __name__, description="Sign up, sign in, token rotation and sign out.")


@blp.route("/register", methods=["POST"])
@blp.doc(**PUBLIC)
@limiter.limit(auth_rate_limit)
@blp.arguments(RegisterSchema)
@blp.response(201, AuthResultSchema)
def register(data):
    """Create an account (viewer or creator) and sign in."""
    return service.register(data)


@blp.route("/login", methods=["POST"])
@blp.doc(**PUBLIC)
@limiter.limit(auth_rate_limit)
@blp.arguments(LoginSchema)
@blp.response(200, AuthResultSchema)
def login(data):
    """Sign in with email and password."""
    return service.login(data["email"], data["password"])


@blp.route("/refresh", methods=["POST"])
@limiter.limit(auth_rate_limit)
@auth_required(refresh=True)
@blp.response(200, TokenPairSchema)
def refresh():
    """Trade a refresh token (as Bearer) for a new pair. Each refresh token works once."""
    return service.refresh(current_user, get_jwt())


@blp.route("/logout", methods=["POST"])
@auth_required(any_type=True)
@blp.response(200, LogoutResultSchema)
def logout():
    """Revoke the presented token and every token of the same sign-in (access and refresh)."""
    service.logout(get_jwt())
    return {"success": True}


@blp.route("/profile", methods=["GET"])
@auth_required()
@blp.response(200, UserSchema)
def profile():
    """The signed-in user."""
    return current_user
