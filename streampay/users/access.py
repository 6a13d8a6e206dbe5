"""Who may call a route: a valid access token, an active account, and one of the given roles."""

from __future__ import annotations

from functools import wraps

from flask import current_app
from flask_jwt_extended import current_user, verify_jwt_in_request

from streampay.errors import Forbidden
from streampay.users.models import Role

# flask-smorest doc for a route that needs no token (the API default is bearer auth).
PUBLIC = {"security": []}


def auth_required(*roles: Role, refresh: bool = False, any_type: bool = False):
    """Require a token (refresh or either type when asked) and, if roles are given, one of them."""

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            verify_jwt_in_request(refresh=refresh, verify_type=not any_type)
            if roles and current_user.role not in roles:
                raise Forbidden(f"This needs the {' or '.join(r.value for r in roles)} role.")
            return view(*args, **kwargs)

        return wrapper

    return decorator


def auth_rate_limit() -> str:
    """flask-limiter's limit for sign-up, sign-in and token endpoints (THROTTLE_LIMIT per THROTTLE_TTL)."""
    return current_app.config["AUTH_RATE_LIMIT"]
