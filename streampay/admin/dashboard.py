"""rq-dashboard mounted at /admin/rq/, for admins only.

A browser cannot send a Bearer header, so an admin trades an access token for a pass
(POST /api/v1/admin/dashboard-session): a short-lived token in an HttpOnly, SameSite=Strict cookie
scoped to the dashboard's path (Secure in production), signed with a key of its own so it is never
an API token. Every request to the dashboard checks it, and the holder's role, account and sign-in
in the database, so signing out or losing the admin role closes the dashboard at once.

What changes something (requeue, delete, empty, compact) must also echo the pass's CSRF value: the
dashboard's own script sends its `_csrf_token` cookie back as `X-CSRFToken` (double submit), and a
request a browser marks as cross-site is refused outright.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from functools import wraps
from urllib.parse import urlsplit

import jwt
from flask import Flask, Response, current_app, request
from rq_dashboard.web import blueprint as rq_blueprint

from streampay.auth import tokens
from streampay.config import PRODUCTION_NAMES
from streampay.errors import Forbidden, Unauthorized
from streampay.extensions import db
from streampay.users.models import Role, User

PATH = "/admin/rq"
COOKIE = "streampay_dashboard"
CSRF_COOKIE = "_csrf_token"  # the name rq-dashboard's script reads; it sends the value as X-CSRFToken
CSRF_HEADER = "X-CSRFToken"
AUDIENCE = "streampay:rq-dashboard"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# rq-dashboard answers its "requeue every failed job" on GET as well as POST: treated as a change either way.
CHANGES_ON_GET = {f"{rq_blueprint.name}.requeue_all"}


def _key() -> bytes:
    # Derived from the access tokens' secret, but not it: a pass never verifies as an API token, nor the reverse.
    secret = current_app.config["JWT_SECRET_KEY"].encode()
    return hmac.new(secret, b"streampay rq-dashboard pass", hashlib.sha256).digest()


def open_session(user: User, claims: dict) -> tuple[dict, Callable[[Response], Response]]:
    """A pass for the admin of these access-token claims: the reply, and what sets its cookies on the response."""
    lifetime = current_app.config["DASHBOARD_SESSION_SECONDS"]
    csrf = secrets.token_urlsafe(24)
    payload = {
        "sub": str(user.id),
        "fam": claims.get("fam"),  # the sign-in: signing out of it ends the pass
        "csrf": csrf,
        "aud": AUDIENCE,
        "exp": int(time.time()) + lifetime,
    }
    encoded = jwt.encode(payload, _key(), algorithm="HS256")

    def set_cookies(response: Response) -> Response:
        options = {"max_age": lifetime, **_cookie_scope()}
        response.set_cookie(COOKIE, encoded, httponly=True, **options)
        response.set_cookie(CSRF_COOKIE, csrf, httponly=False, **options)  # the page's script reads it
        return response

    return {"url": f"{PATH}/", "expires_in": lifetime}, set_cookies


def close_session(response: Response) -> Response:
    for name in (COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, **_cookie_scope())
    return response


def _cookie_scope() -> dict:
    secure = current_app.config["APP_ENV"] in PRODUCTION_NAMES
    return {"path": PATH, "secure": secure, "samesite": "Strict"}


def _pass() -> dict:
    encoded = request.cookies.get(COOKIE)
    if not encoded:
        raise Unauthorized(
            "The RQ dashboard needs an admin's pass: POST /api/v1/admin/dashboard-session with an admin token."
        )
    try:
        payload = jwt.decode(encoded, _key(), algorithms=["HS256"], audience=AUDIENCE)
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("The dashboard pass has expired; open the dashboard again.") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized("The dashboard pass is not valid; open the dashboard again.") from exc
    return payload


def _guard() -> None:
    """Every request to the dashboard: a valid pass, of an active admin whose sign-in stands, and CSRF-safe."""
    if request.blueprint != rq_blueprint.name:
        return
    payload = _pass()
    user = tokens.holder_of(payload)  # revoked sign-in, deactivated or vanished account: 401
    admin = user.role == Role.ADMIN
    db.session.rollback()  # the read ends here: no transaction stays open while the dashboard talks to Redis
    if not admin:
        raise Forbidden("The RQ dashboard is for admins.")
    if request.method in SAFE_METHODS and request.endpoint not in CHANGES_ON_GET:
        return
    origin = request.headers.get("Origin")
    cross_site = request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none")
    if cross_site or (origin is not None and urlsplit(origin).netloc != request.host):
        raise Forbidden("A change to the job queues must come from the dashboard's own page.")
    given = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(given.encode(), str(payload.get("csrf", "")).encode()):
        raise Forbidden(f"A change to the job queues needs the {CSRF_HEADER} header the dashboard's page sends.")


def _policy(app_policy: str) -> str:
    """The app's CSP plus 'unsafe-eval' for scripts: rq-dashboard draws its tables with underscore.js templates,
    which compile with `new Function`. Only the dashboard's pages get it. (Its one inline script carries the
    reply's nonce: streampay/templates/rq_dashboard/base.html.)"""
    if "script-src " in app_policy:
        return app_policy.replace("script-src ", "script-src 'unsafe-eval' ", 1)
    return f"{app_policy}; script-src 'self' 'unsafe-inline' 'unsafe-eval'"


def _with_policy(view: Callable, policy: str) -> Callable:
    @wraps(view)
    def dashboard_view(*args, **kwargs):
        return view(*args, **kwargs)

    dashboard_view.talisman_view_options = {"content_security_policy": policy}  # flask-talisman's per-view CSP
    return dashboard_view


def init_app(app: Flask) -> None:
    app.config.setdefault("RQ_DASHBOARD_REDIS_URL", ("this app's Redis",))  # shown on the page, never dialled
    app.config.setdefault("RQ_DASHBOARD_POLL_INTERVAL", 2500)
    app.register_blueprint(rq_blueprint, url_prefix=PATH)
    # rq-dashboard's own before_request opens a client from RQ_DASHBOARD_REDIS_URL on every request; this app's
    # dashboard reads the app's own client instead (real Redis, or the embedded in-process one, which has no URL).
    app.before_request_funcs[rq_blueprint.name] = []
    app.redis_conn = app.extensions["streampay.redis"]
    app.before_request(_guard)
    policy = _policy(app.config["CONTENT_SECURITY_POLICY"])
    for endpoint, view in list(app.view_functions.items()):
        if endpoint.startswith(f"{rq_blueprint.name}."):
            app.view_functions[endpoint] = _with_policy(view, policy)
