"""Settings read from the environment (and `.env` in development).

Every variable the service understands is listed in `.env.example` with its default.
Nothing here talks to a database or Redis; `create_app` decides what to build from it.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import environs
from marshmallow import ValidationError
from marshmallow.validate import Range

DEV_JWT_SECRET = "dev-only-jwt-secret-change-me-before-production"  # noqa: S105 (refused in production)
DEV_JWT_REFRESH_SECRET = "dev-only-jwt-refresh-secret-change-me-before-production"  # noqa: S105
PRODUCTION_NAMES = {"production", "prod"}
STELLAR_PASSPHRASES = {
    "testnet": "Test SDF Network ; September 2015",
    "public": "Public Global Stellar Network ; September 2015",
}
STELLAR_HORIZONS = {
    "testnet": "https://horizon-testnet.stellar.org",
    "public": "https://horizon.stellar.org",
}

STELLAR_NETWORKS = ["testnet", "public", "custom"]
LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
# Everything from the app itself (no CDN). Scripts only from files, or inline with the reply's nonce (Swagger UI's
# and RQ's dashboard's start-up); inline styles, which Swagger UI sets as it draws.
DEFAULT_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class ConfigError(RuntimeError):
    """The environment describes a service that must not start."""


def parse_duration(value: str | int) -> timedelta:
    """'900', '15m', '24h', '7d' -> timedelta (the original design's JWT_EXPIRATION format)."""
    match = _DURATION.match(str(value))
    if not match:
        raise ConfigError(f"not a duration: {value!r} (use seconds or 15m, 24h, 7d)")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


class _Env(environs.Env):
    """environs over a given mapping instead of os.environ; an empty value means unset, as in `.env.example`."""

    def __init__(self, source: dict):
        super().__init__(eager=False)
        self._source = {key: value for key, value in source.items() if value not in (None, "")}
        self.add_parser("duration", _duration)

    def _get_value(self, env_key, default):
        return self._source.get(env_key, default)

    def given(self, name: str) -> str | None:
        return self._source.get(name)


def _duration(value: str | int) -> timedelta:
    try:
        return parse_duration(value)
    except ConfigError as exc:
        raise ValidationError(str(exc)) from exc


def _one_of(choices: list[str]):
    def check(value: str) -> None:
        if value.lower() not in {c.lower() for c in choices}:
            raise ValidationError(f"must be one of {', '.join(choices)}")

    return check


def _refuse_invalid(reader: _Env) -> None:
    """Every bad value at once, each with its variable's name and what was given."""
    try:
        reader.seal()
    except environs.EnvValidationError as exc:
        problems = [
            f"{name}={reader.given(name)!r}: {' '.join(map(str, messages))}"
            for name, messages in exc.error_messages.items()
        ]
        raise ConfigError("invalid settings: " + "; ".join(problems)) from None


def database_url(env: dict, instance_path: str) -> str:
    """DATABASE_URL, else DATABASE_HOST/PORT/USER/PASSWORD/NAME, else SQLite under instance/."""
    url = env.get("DATABASE_URL")
    if url:
        # Heroku still hands out postgres://, which SQLAlchemy 2 no longer accepts.
        for scheme in ("postgres://", "postgresql://"):
            if url.startswith(scheme):
                # SQLAlchemy 2.1 would pick psycopg 3 for a bare scheme; we ship psycopg2.
                url = "postgresql+psycopg2://" + url[len(scheme) :]
        return url
    if env.get("DATABASE_HOST"):
        user = quote(env.get("DATABASE_USER") or env.get("DATABASE_USERNAME") or "postgres", safe="")
        password = env.get("DATABASE_PASSWORD") or ""
        auth = f"{user}:{quote(password, safe='')}" if password else user
        host = env["DATABASE_HOST"]
        port = env.get("DATABASE_PORT") or "5432"
        name = env.get("DATABASE_NAME") or "streampay"
        return f"postgresql+psycopg2://{auth}@{host}:{port}/{name}"
    return "sqlite:///" + str(Path(instance_path) / "streampay.sqlite3")


def redis_url(env: dict) -> str | None:
    """REDIS_URL, else REDIS_HOST/PORT/PASSWORD/DB; None means the in-process Redis."""
    if env.get("REDIS_URL"):
        return env["REDIS_URL"]
    if env.get("REDIS_HOST"):
        password = env.get("REDIS_PASSWORD")
        auth = f":{quote(password, safe='')}@" if password else ""
        return f"redis://{auth}{env['REDIS_HOST']}:{env.get('REDIS_PORT') or 6379}/{env.get('REDIS_DB') or 0}"
    return None


def load(env: dict | None = None, instance_path: str = "instance") -> dict:
    """Build the Flask config mapping from an environment mapping."""
    env = dict(os.environ if env is None else env)
    e = _Env(env)

    def _int(name: str, default: int) -> int:
        return e.int(name, default, validate=Range(min=0))

    app_env = (env.get("APP_ENV") or env.get("FLASK_ENV") or "development").lower()
    api_prefix = "/" + (env.get("API_PREFIX") or "api/v1").strip("/")
    throttle_ttl = _int("THROTTLE_TTL", 60)
    throttle_limit = _int("THROTTLE_LIMIT", 10)
    network = (e.str("STELLAR_NETWORK", "testnet", validate=_one_of(STELLAR_NETWORKS)) or "").lower()

    cfg = {
        "APP_ENV": app_env,
        "PORT": _int("PORT", 3000),
        "HOST": env.get("HOST") or "127.0.0.1",
        "API_PREFIX": api_prefix,
        "CORS_ORIGINS": [
            o.strip() for o in (env.get("CORS_ORIGIN") or "http://localhost:3000").split(",") if o.strip()
        ],
        "TRUSTED_PROXIES": _int("TRUSTED_PROXIES", 0),
        "LOG_LEVEL": (e.str("LOG_LEVEL", "INFO", validate=_one_of(LOG_LEVELS)) or "").upper(),
        "SENTRY_DSN": env.get("SENTRY_DSN") or None,
        "METRICS_TOKEN": env.get("METRICS_TOKEN") or None,
        # Database
        "SQLALCHEMY_DATABASE_URI": database_url(env, instance_path),
        # A pooled connection is pinged before use only after this many seconds idle (0: before every use).
        "DB_PING_AFTER_IDLE_SECONDS": _int("DB_PING_AFTER_IDLE_SECONDS", 10),
        "SQLALCHEMY_ENGINE_OPTIONS": {
            "pool_pre_ping": True,
            "pool_size": _int("DB_POOL_SIZE", 5),
            "max_overflow": _int("DB_MAX_OVERFLOW", 10),
            "pool_timeout": _int("DB_POOL_TIMEOUT", 5),
            # An unreachable server fails a connection in seconds (a 503), not after the kernel gives up.
            "connect_args": {"connect_timeout": _int("DB_CONNECT_TIMEOUT", 5)},
        },
        # Redis: None runs an in-process fakeredis shared by the app, the limiter and the queue.
        "REDIS_URL": redis_url(env),
        "EMBEDDED_WORKER": e.bool("EMBEDDED_WORKER", True),
        "REDIS_MAX_CONNECTIONS": _int("REDIS_MAX_CONNECTIONS", 100),
        "REDIS_POOL_TIMEOUT": _int("REDIS_POOL_TIMEOUT", 10),
        # The longest a heartbeat waits for the meter's Redis; past it the player gets an `error` (unavailable).
        "METER_TIMEOUT_MS": _int("METER_TIMEOUT_MS", 2000),
        # Background loops (clock, worker, push listener) retry a lost Redis at most this many seconds apart.
        "RECONNECT_MAX_SECONDS": _int("RECONNECT_MAX_SECONDS", 5),
        # Auth
        "JWT_SECRET_KEY": env.get("JWT_SECRET") or DEV_JWT_SECRET,
        "JWT_REFRESH_SECRET": env.get("JWT_REFRESH_SECRET") or DEV_JWT_REFRESH_SECRET,
        "JWT_ACCESS_TOKEN_EXPIRES": e.duration("JWT_EXPIRATION", "15m"),
        "JWT_REFRESH_TOKEN_EXPIRES": e.duration("JWT_REFRESH_EXPIRATION", "7d"),
        "JWT_TOKEN_LOCATION": ["headers"],
        "JWT_COOKIE_CSRF_PROTECT": False,
        # Lifetime of an admin's pass to RQ's dashboard at /admin/rq/ (a cookie; see streampay/admin/dashboard.py)
        "DASHBOARD_SESSION_SECONDS": _int("DASHBOARD_SESSION_SECONDS", 900),
        "PASSWORD_HASH_TIME_COST": _int("PASSWORD_HASH_TIME_COST", 3),
        "PASSWORD_HASH_MEMORY_KIB": _int("PASSWORD_HASH_MEMORY_KIB", 65536),
        # Rate limits (flask-limiter on Redis) for register, login and refresh
        "THROTTLE_TTL": throttle_ttl,
        "THROTTLE_LIMIT": throttle_limit,
        "AUTH_RATE_LIMIT": f"{throttle_limit} per {throttle_ttl} second",
        "RATELIMIT_ENABLED": e.bool("RATELIMIT_ENABLED", True),
        "RATELIMIT_HEADERS_ENABLED": True,
        # Stellar
        "STELLAR_NETWORK": network,
        "STELLAR_HORIZON_URL": env.get("STELLAR_HORIZON_URL") or STELLAR_HORIZONS.get(network, ""),
        "STELLAR_PASSPHRASE": env.get("STELLAR_PASSPHRASE") or STELLAR_PASSPHRASES.get(network, ""),
        "STELLAR_MASTER_SECRET_KEY": env.get("STELLAR_MASTER_SECRET_KEY") or None,
        "STELLAR_SOROBAN_RPC_URL": env.get("STELLAR_SOROBAN_RPC_URL") or None,
        "STELLAR_ASSET_CODE": env.get("STELLAR_ASSET_CODE") or None,
        "STELLAR_ASSET_ISSUER": env.get("STELLAR_ASSET_ISSUER") or None,
        "STELLAR_BASE_FEE": _int("STELLAR_BASE_FEE", 100),
        "STELLAR_CHANNEL_SECRETS": [
            x.strip() for x in (env.get("STELLAR_CHANNEL_SECRETS") or "").split(",") if x.strip()
        ],
        "STELLAR_FEE_BUMP": e.bool("STELLAR_FEE_BUMP", False),
        "STELLAR_FRIENDBOT_URL": env.get("STELLAR_FRIENDBOT_URL")
        or ("https://friendbot.stellar.org" if network == "testnet" else None),
        "STELLAR_HOME_DOMAIN": env.get("STELLAR_HOME_DOMAIN") or "localhost",
        "STELLAR_WEB_AUTH_DOMAIN": env.get("STELLAR_WEB_AUTH_DOMAIN") or env.get("STELLAR_HOME_DOMAIN") or "localhost",
        "STELLAR_SEP10_SIGNING_SECRET": env.get("STELLAR_SEP10_SIGNING_SECRET") or None,
        "STELLAR_SEP10_TIMEOUT": _int("STELLAR_SEP10_TIMEOUT", 300),
        "STELLAR_TIMEOUT": _int("STELLAR_TIMEOUT", 30),
        "PAYOUT_MIN_AMOUNT": env.get("PAYOUT_MIN_AMOUNT") or "10",
        "PAYOUT_TX_TIMEOUT": _int("PAYOUT_TX_TIMEOUT", 60),
        "PAYOUT_INTERVAL_SECONDS": _int("PAYOUT_INTERVAL_SECONDS", 3600),
        "PAYOUT_LEASE_SECONDS": _int("PAYOUT_LEASE_SECONDS", 120),
        "RECONCILE_INTERVAL_SECONDS": _int("RECONCILE_INTERVAL_SECONDS", 86400),
        "DEPOSIT_SCAN_INTERVAL_SECONDS": _int("DEPOSIT_SCAN_INTERVAL_SECONDS", 30),
        "ANALYTICS_FOLD_INTERVAL_SECONDS": _int("ANALYTICS_FOLD_INTERVAL_SECONDS", 60),
        # A CSV export reads this many rows a transaction, then writes them out before the next page.
        "CSV_PAGE_ROWS": e.int("CSV_PAGE_ROWS", 1000, validate=Range(min=1)),
        "PAYMENT_STREAM_CONTRACT_ID": env.get("PAYMENT_STREAM_CONTRACT_ID") or None,
        # Storage
        "AWS_ACCESS_KEY_ID": env.get("AWS_ACCESS_KEY_ID") or None,
        "AWS_SECRET_ACCESS_KEY": env.get("AWS_SECRET_ACCESS_KEY") or None,
        "AWS_REGION": env.get("AWS_REGION") or "us-east-1",
        "S3_BUCKET_NAME": env.get("S3_BUCKET_NAME") or None,
        "S3_ENDPOINT_URL": env.get("S3_ENDPOINT_URL") or None,
        "IPFS_API_URL": env.get("IPFS_API_URL") or None,
        "IPFS_GATEWAY_URL": env.get("IPFS_GATEWAY_URL") or None,
        # Mail
        "SMTP_HOST": env.get("SMTP_HOST") or None,
        "SMTP_PORT": _int("SMTP_PORT", 587),
        "SMTP_USER": env.get("SMTP_USER") or None,
        "SMTP_PASSWORD": env.get("SMTP_PASSWORD") or None,
        "SMTP_FROM": env.get("SMTP_FROM") or "StreamPay <no-reply@localhost>",
        "SMTP_STARTTLS": e.bool("SMTP_STARTTLS", _int("SMTP_PORT", 587) == 587),
        "SMTP_TIMEOUT": _int("SMTP_TIMEOUT", 10),
        # Webhooks: per-attempt timeout, retry schedule (about a day), when a failing endpoint is switched off.
        "WEBHOOK_TIMEOUT_SECONDS": _int("WEBHOOK_TIMEOUT_SECONDS", 5),
        "WEBHOOK_RETRY_SCHEDULE": [
            int(parse_duration(x).total_seconds())
            for x in (e.str("WEBHOOK_RETRY_SCHEDULE", "5s,5m,30m,2h,5h,10h,10h") or "").split(",")
            if x.strip()
        ],
        "WEBHOOK_DISABLE_AFTER_FAILURES": _int("WEBHOOK_DISABLE_AFTER_FAILURES", 20),
        "WEBHOOK_ALLOW_PRIVATE_URLS": e.bool("WEBHOOK_ALLOW_PRIVATE_URLS", app_env not in PRODUCTION_NAMES),
        "EVENT_SWEEP_INTERVAL_SECONDS": _int("EVENT_SWEEP_INTERVAL_SECONDS", 60),
        "EVENT_RETENTION_DAYS": _int("EVENT_RETENTION_DAYS", 30),
        "IDEMPOTENCY_KEY_HOURS": _int("IDEMPOTENCY_KEY_HOURS", 24),
        "IDEMPOTENCY_LOCK_SECONDS": _int("IDEMPOTENCY_LOCK_SECONDS", 300),
        # Money and metering
        "PLATFORM_FEE_BPS": _int("PLATFORM_FEE_BPS", 1000),
        "STREAM_WINDOW_SECONDS": _int("STREAM_WINDOW_SECONDS", 60),
        "STREAM_MIN_SECONDS": _int("STREAM_MIN_SECONDS", 10),
        "HEARTBEAT_INTERVAL_SECONDS": _int("HEARTBEAT_INTERVAL_SECONDS", 5),
        "HEARTBEAT_TIMEOUT_SECONDS": _int("HEARTBEAT_TIMEOUT_SECONDS", 15),
        "CHECKPOINT_LEAD_SECONDS": _int("CHECKPOINT_LEAD_SECONDS", 10),
        "MAX_SESSIONS_PER_VIEWER": _int("MAX_SESSIONS_PER_VIEWER", 3),
        "BALANCE_LOW_SECONDS": _int("BALANCE_LOW_SECONDS", 60),
        "REAPER_INTERVAL_SECONDS": _int("REAPER_INTERVAL_SECONDS", 15),
        "SOCK_SERVER_OPTIONS": {
            "ping_interval": _int("WS_PING_INTERVAL_SECONDS", 25),
            # Counted after permessage-deflate, a read of at most 4 KiB at a time: a bomb is closed with 1009.
            "max_message_size": _int("WS_MAX_MESSAGE_BYTES", 64 * 1024),
        },
        # Admission: a web process holds at most this many player sockets and refuses more with 503 (Retry-After).
        "WS_MAX_SOCKETS_PER_WORKER": _int("WS_MAX_SOCKETS_PER_WORKER", 5000),
        "WS_RETRY_AFTER_SECONDS": _int("WS_RETRY_AFTER_SECONDS", 5),
        # A full process stays full until players leave: they are told to come back later than from a passing strain.
        "WS_RETRY_AFTER_FULL_SECONDS": _int("WS_RETRY_AFTER_FULL_SECONDS", 30),
        # Past this many refusals a second, a process tells players to come back proportionally later than
        # WS_RETRY_AFTER_SECONDS, up to WS_RETRY_AFTER_FULL_SECONDS: its refusals cost the players it holds.
        "WS_REFUSALS_PER_SECOND": _int("WS_REFUSALS_PER_SECOND", 50),
        # ... and refuses them too while its event loop runs this late (ms): the CPU it gets is already spoken for.
        "WS_ADMIT_MAX_LAG_MS": _int("WS_ADMIT_MAX_LAG_MS", 50),
        # ... and while it ran, or its loop waited for a CPU, more than this percent of the last two seconds: its
        # sockets share one core, and past this a heartbeat's turns of the loop grow long (streaming.demand).
        "WS_ADMIT_MAX_CPU_PERCENT": _int("WS_ADMIT_MAX_CPU_PERCENT", 90),
        # ... and while more than this percent of its sockets' metered calls (heartbeats, starts) of the last second
        # or two waited longer than this (ms) for the meter: held players' p99 is past the wait.
        "WS_ADMIT_MAX_METER_WAIT_MS": _int("WS_ADMIT_MAX_METER_WAIT_MS", 100),
        "WS_ADMIT_MAX_SLOW_METER_PERCENT": _int("WS_ADMIT_MAX_SLOW_METER_PERCENT", 1),
        # Past admission: a process whose loop has run this late (ms) on average over two seconds closes its
        # newest sockets, this percent of them at a time (1013, try again later), until the rest get their latency
        # back.
        "WS_SHED_LAG_MS": _int("WS_SHED_LAG_MS", 250),
        "WS_SHED_PERCENT": _int("WS_SHED_PERCENT", 10),
        # A stopStream waits this long (ms) for a settlement turn of its process, then is answered at once and
        # settled by a job on the worker (a burst of stops on the rows every settlement shares).
        "STOP_SETTLE_WAIT_MS": _int("STOP_SETTLE_WAIT_MS", 1000),
        # OpenAPI (flask-smorest)
        "API_TITLE": "StreamPay",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api",
        "OPENAPI_JSON_PATH": "openapi.json",
        "OPENAPI_SWAGGER_UI_PATH": "/docs",
        "OPENAPI_SWAGGER_UI_URL": "/api/docs/assets/",  # swagger-ui-bundle's files, served by the app
        "MAX_CONTENT_LENGTH": _int("MAX_UPLOAD_BYTES", 512 * 1024 * 1024),
        "MAX_MEDIA_SECONDS": _int("MAX_MEDIA_SECONDS", 6 * 3600),
        # The catalogue's listings a web process holds (content/listings.py): at most this many ids, and a tenth as
        # many items; a listing longer than a tenth of it is read from the database page by page. 0: none held.
        "CATALOGUE_INDEX_IDS": _int("CATALOGUE_INDEX_IDS", 400_000),
        # How often each web process asks the database which items changed lately (updated_at), and moves its held
        # listings on for them: what a change whose notice Redis never got (an outage) costs at most. 0: never.
        "CATALOGUE_RECHECK_SECONDS": _int("CATALOGUE_RECHECK_SECONDS", 60),
        "MEDIA_JOB_TIMEOUT": _int("MEDIA_JOB_TIMEOUT", 900),
        # How often the clock queues again media stuck in `processing` past MEDIA_JOB_TIMEOUT (its job lost).
        "MEDIA_SWEEP_INTERVAL_SECONDS": _int("MEDIA_SWEEP_INTERVAL_SECONDS", 300),
        "MEDIA_URL_TTL": _int("MEDIA_URL_TTL", 300),
        "MEDIA_ROOT": env.get("MEDIA_ROOT") or None,
        # Hostile input and security headers
        "MAX_JSON_BYTES": _int("MAX_JSON_BYTES", 1024 * 1024),
        "HSTS_MAX_AGE": _int("HSTS_MAX_AGE", 365 * 86400),
        "CONTENT_SECURITY_POLICY": env.get("CONTENT_SECURITY_POLICY") or DEFAULT_CSP,
        # The reference web player and creator studio at /app/.
        "WEB_PAGES_ENABLED": e.bool("WEB_PAGES_ENABLED", True),
    }
    _refuse_invalid(e)
    return cfg


def refuse_unsafe(cfg: dict) -> None:
    """In production, refuse development secrets and the embedded database or Redis."""
    if cfg["APP_ENV"] not in PRODUCTION_NAMES:
        return
    problems = []
    for key, dev in (("JWT_SECRET_KEY", DEV_JWT_SECRET), ("JWT_REFRESH_SECRET", DEV_JWT_REFRESH_SECRET)):
        secret = cfg.get(key) or ""
        if secret == dev or len(secret) < 32:
            problems.append(f"{key.replace('_KEY', '')} must be set to a random value of at least 32 characters")
    if cfg["JWT_SECRET_KEY"] == cfg["JWT_REFRESH_SECRET"]:
        problems.append("JWT_SECRET and JWT_REFRESH_SECRET must differ")
    if cfg["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        problems.append("DATABASE_URL must point at PostgreSQL")
    if not cfg["REDIS_URL"]:
        problems.append("REDIS_URL must point at Redis")
    if problems:
        raise ConfigError("refusing to start in production: " + "; ".join(problems))
