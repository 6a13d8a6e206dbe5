"""Security headers on every reply, by flask-talisman: nosniff, a frame policy, a referrer policy, a CSP,
and HSTS in production (sent on HTTPS requests, including those a trusted proxy marks as HTTPS).

TLS is ended by the router in front of the web dyno, so the app redirects nothing itself.
"""

from __future__ import annotations

from flask import Flask
from flask_talisman import DENY, Talisman

from streampay.config import PRODUCTION_NAMES

talisman = Talisman()


def init_app(app: Flask) -> None:
    talisman.init_app(
        app,
        force_https=False,
        frame_options=DENY,
        strict_transport_security=app.config["APP_ENV"] in PRODUCTION_NAMES,
        strict_transport_security_max_age=app.config["HSTS_MAX_AGE"],
        content_security_policy=app.config["CONTENT_SECURITY_POLICY"],
        # The inline scripts served (Swagger UI's and RQ's dashboard's start-up) carry this reply's nonce.
        content_security_policy_nonce_in=["script-src"],
        referrer_policy="strict-origin-when-cross-origin",
        session_cookie_secure=app.config["APP_ENV"] in PRODUCTION_NAMES,
        x_content_type_options=True,
    )
