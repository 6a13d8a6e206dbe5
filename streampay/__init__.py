"""StreamPay: pay-per-second media streaming settled on Stellar."""

from __future__ import annotations

import importlib
import os

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from streampay import commands, embedded, logs, metrics
from streampay import config as settings
from streampay.extensions import db, init_redis, ping_when_idle

# What the views and jobs import where they use it (the Stellar SDK, PyAV, Alembic...), so that a `flask`
# command loads only what it runs. A server and the worker import it all before they serve: no request,
# and no job in a worker's forked work horse, waits half a second on an import.
DEFERRED = (
    "streampay.stellar.jobs",
    "streampay.stellar.sep10",
    "streampay.stellar.soroban",
    "streampay.ledger.deposit",
    "av",
    "PIL.Image",
    "alembic.script",
)


# Every table: the mappers resolve relationships by name, and `flask db check` compares them all.
MODELS = (
    *(
        f"streampay.{domain}.models"
        for domain in ("users", "auth", "content", "ledger", "streaming", "stellar", "events", "webhooks", "analytics")
    ),
    "streampay.idempotency",
)


def create_app(config: dict | None = None) -> Flask:
    """Build the app from the environment; `config` overrides settings (tests use it).

    Built by `flask` to list or find one of its own commands (`flask --help`, `flask ledger check`), the app runs
    that command and serves nothing: it is built without the routes and what only requests use. Every other
    app, a server's, the worker's, `flask run`'s and `flask routes`' among them, is built whole.
    """
    app = Flask(__name__, instance_path=os.environ.get("INSTANCE_PATH") or None)
    app.config.update(settings.load(instance_path=app.instance_path))
    app.config.update(config or {})
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        # SQLite's pools (a file or one in-memory connection) take no size.
        options = dict(app.config["SQLALCHEMY_ENGINE_OPTIONS"])
        options.pop("pool_size", None)
        options.pop("max_overflow", None)
        options.pop("pool_timeout", None)
        options.pop("connect_args", None)  # libpq's
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options
    ping_after = app.config["DB_PING_AFTER_IDLE_SECONDS"] if _on_postgresql(app) else 0
    if ping_after:
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {**app.config["SQLALCHEMY_ENGINE_OPTIONS"], "pool_pre_ping": False}
    settings.refuse_unsafe(app.config)
    os.makedirs(app.instance_path, exist_ok=True)

    logs.init_app(app)
    metrics.init_app(app)
    if app.config["SENTRY_DSN"]:
        import sentry_sdk

        sentry_sdk.init(dsn=app.config["SENTRY_DSN"], environment=app.config["APP_ENV"], send_default_pii=False)
    if app.config["TRUSTED_PROXIES"]:
        n = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)

    db.init_app(app)
    if ping_after:
        with app.app_context():
            ping_when_idle(db.engine, ping_after)
    if not app.config["REDIS_URL"]:
        # The embedded default: a running server of this checkout lends its Redis, if there is one.
        app.config["REDIS_URL"] = embedded.discover(app.instance_path, app.config["SQLALCHEMY_DATABASE_URI"])
    serves = not commands.finding_a_command()
    init_redis(app, lazily=not serves)
    api = _init_requests(app) if serves else None
    _init_domains(app)
    if serves:
        _register_routes(app, api)
    if embedded.started_by_flask_run():
        embedded.prepare_server(app)
    return app


def close(app: Flask) -> None:
    """Stop the threads the app started beside its requests (the push listener, the loop-lag probe) and close its
    Redis and database connections: for a process that builds apps and drops them while it goes on (the tests)."""
    hub = app.extensions.get("streampay.hub")
    if hub is not None:
        hub.stop()
    found = app.extensions.get("streampay.meter")
    if found is not None:
        found[0].close()
    client = app.extensions.get("streampay.redis")
    if client is not None:
        client.connection_pool.disconnect()
    with app.app_context():
        db.engine.dispose()


def _on_postgresql(app: Flask) -> bool:
    return app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql")


def preload() -> None:
    """Import what the app imports only where it is used: a server calls this before it serves."""
    for name in DEFERRED:
        importlib.import_module(name)


def _init_api(app: Flask):
    from streampay import openapi

    api = openapi.Api(
        app,
        spec_kwargs={
            "info": {"description": "Pay-per-second media streaming settled on Stellar."},
            "security": [{"bearerAuth": []}],
        },
    )
    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    app.extensions["streampay.api"] = api
    return api


def _init_domains(app: Flask) -> None:
    """What an app needs to run a command as well as to serve: the tables, the password hasher and tokens, mail,
    the commands, and each domain's receivers of the others' signals (`ledger check` asks streaming what its
    sessions hold)."""
    from streampay import dbtypes, mail
    from streampay.auth import tokens
    from streampay.content import service as content
    from streampay.streaming import revocation
    from streampay.streaming import service as streaming
    from streampay.users import passwords

    for name in MODELS:
        importlib.import_module(name)
    if _on_postgresql(app):
        dbtypes.declare_postgresql_only()
    passwords.init_app(app)
    tokens.init_app(app)
    content.init_app(app)
    streaming.init_app(app)
    revocation.init_app(app)
    mail.init_app(app)
    commands.init_app(app)


def _init_requests(app: Flask):
    """What only requests use: the rate limits, CORS, security headers and the error replies."""
    from streampay import apidocs, errors, inputs, outages, security
    from streampay.auth import tokens
    from streampay.extensions import cors, limiter
    from streampay.streaming.ws import write_refusal

    app.before_request(write_refusal)  # first: the refusals Flask writes skip the other hooks (its docstring)
    limiter.init_app(app)
    cors.init_app(
        app,
        resources={r"/api/*": {"origins": app.config["CORS_ORIGINS"]}},
        expose_headers=["X-Pagination", "X-Request-ID", "Retry-After"],
    )
    security.init_app(app)
    inputs.init_app(app)
    apidocs.init_app(app)
    api = _init_api(app)
    errors.init_app(app, api)
    outages.init_app(app)
    tokens.init_jwt(app)
    return api


def _register_routes(app: Flask, api) -> None:
    from streampay import health
    from streampay.admin import dashboard
    from streampay.admin.routes import blp as admin_blp
    from streampay.analytics import metrics as analytics_metrics
    from streampay.analytics.routes import blp as analytics_blp
    from streampay.auth.routes import blp as auth_blp
    from streampay.content.routes import blp as content_blp
    from streampay.ledger.routes import blp as wallet_blp
    from streampay.stellar.routes import blp as stellar_blp
    from streampay.stellar.routes import payouts_blp
    from streampay.streaming import asyncapi, ws
    from streampay.streaming.routes import blp as streaming_blp
    from streampay.streaming.routes import payments_blp
    from streampay.users.routes import blp as users_blp
    from streampay.web import pages as web
    from streampay.webhooks.routes import blp as webhooks_blp

    prefix = app.config["API_PREFIX"]
    api.register_blueprint(health.blp, url_prefix="/")
    api.register_blueprint(auth_blp, url_prefix=f"{prefix}/auth")
    api.register_blueprint(users_blp, url_prefix=f"{prefix}/users")
    api.register_blueprint(content_blp, url_prefix=f"{prefix}/content")
    api.register_blueprint(wallet_blp, url_prefix=f"{prefix}/wallet")
    api.register_blueprint(streaming_blp, url_prefix=f"{prefix}/streaming")
    api.register_blueprint(payments_blp, url_prefix=f"{prefix}/payments")
    api.register_blueprint(stellar_blp, url_prefix=f"{prefix}/stellar")
    api.register_blueprint(payouts_blp, url_prefix=f"{prefix}/payouts")
    api.register_blueprint(webhooks_blp, url_prefix=f"{prefix}/webhooks")
    api.register_blueprint(analytics_blp, url_prefix=f"{prefix}/analytics")
    api.register_blueprint(admin_blp, url_prefix=f"{prefix}/admin")
    ws.init_app(app, prefix)
    app.register_blueprint(asyncapi.blp)
    analytics_metrics.init_app(app)
    web.init_app(app)
    dashboard.init_app(app)
