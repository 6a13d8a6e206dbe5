"""Settings from the environment, and the production guard that refuses unsafe ones."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from streampay import create_app
from streampay.config import (
    DEV_JWT_REFRESH_SECRET,
    DEV_JWT_SECRET,
    ConfigError,
    database_url,
    load,
    parse_duration,
    redis_url,
)

SECRET = "k3v9-" * 8  # 40 characters
REFRESH_SECRET = "r7q2-" * 8
POSTGRES = "postgresql+psycopg2://streampay:pw@db.internal:5432/streampay"
REDIS = "redis://redis.internal:6379/0"
# Every variable that decides database, Redis, secrets or environment, cleared before each env test.
ENV_NAMES = [
    "APP_ENV",
    "FLASK_ENV",
    "JWT_SECRET",
    "JWT_REFRESH_SECRET",
    "DATABASE_URL",
    "DATABASE_HOST",
    "DATABASE_PORT",
    "DATABASE_USER",
    "DATABASE_USERNAME",
    "DATABASE_PASSWORD",
    "DATABASE_NAME",
    "REDIS_URL",
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_PASSWORD",
    "REDIS_DB",
    "SENTRY_DSN",
    "EMBEDDED_WORKER",
]


# --- parse_duration -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("900", 900),
        (900, 900),
        ("0", 0),
        ("45s", 45),
        ("15m", 900),
        ("24h", 86400),
        ("7d", 7 * 86400),
        (" 15m ", 900),
        ("15 m", 900),
    ],
)
def test_parse_duration(value, seconds):
    assert parse_duration(value) == timedelta(seconds=seconds)


@pytest.mark.parametrize("value", ["", "m", "15x", "1.5h", "-5", "15mm", "15 minutes", "1h30m", "P1D", "15M", None])
def test_parse_duration_refuses_what_it_cannot_read(value):
    with pytest.raises(ConfigError, match="not a duration"):
        parse_duration(value)


def test_jwt_lifetimes_come_from_the_original_variable_names():
    cfg = load({"JWT_EXPIRATION": "1h", "JWT_REFRESH_EXPIRATION": "30d"})
    assert cfg["JWT_ACCESS_TOKEN_EXPIRES"] == timedelta(hours=1)
    assert cfg["JWT_REFRESH_TOKEN_EXPIRES"] == timedelta(days=30)
    defaults = load({})
    assert defaults["JWT_ACCESS_TOKEN_EXPIRES"] == timedelta(minutes=15)
    assert defaults["JWT_REFRESH_TOKEN_EXPIRES"] == timedelta(days=7)
    with pytest.raises(ConfigError):
        load({"JWT_EXPIRATION": "soon"})


# --- database URL ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@h:5432/db", "postgresql+psycopg2://u:p@h:5432/db"),
        ("postgresql://u:p@h:5432/db", "postgresql+psycopg2://u:p@h:5432/db"),
        ("postgresql://h/db?sslmode=require", "postgresql+psycopg2://h/db?sslmode=require"),
        ("postgresql+psycopg2://u@h/db", "postgresql+psycopg2://u@h/db"),
        ("sqlite:////tmp/x.sqlite3", "sqlite:////tmp/x.sqlite3"),
    ],
)
def test_database_url_normalises_postgres_schemes(given, expected):
    assert database_url({"DATABASE_URL": given}, "/instance") == expected


def test_database_url_wins_over_parts():
    env = {"DATABASE_URL": "postgres://a@b/c", "DATABASE_HOST": "ignored"}
    assert database_url(env, "/instance") == "postgresql+psycopg2://a@b/c"


def test_database_url_assembled_from_parts_with_defaults():
    assert database_url({"DATABASE_HOST": "db"}, "/i") == "postgresql+psycopg2://postgres@db:5432/streampay"


def test_database_url_assembled_from_parts_quotes_credentials():
    env = {
        "DATABASE_HOST": "db.internal",
        "DATABASE_PORT": "6543",
        "DATABASE_USER": "app user",
        "DATABASE_PASSWORD": "p@ss/w:rd%",
        "DATABASE_NAME": "sp",
    }
    assert database_url(env, "/i") == "postgresql+psycopg2://app%20user:p%40ss%2Fw%3Ard%25@db.internal:6543/sp"


def test_database_username_is_an_alias():
    assert database_url({"DATABASE_HOST": "db", "DATABASE_USERNAME": "bob"}, "/i").startswith(
        "postgresql+psycopg2://bob@db:"
    )


def test_database_defaults_to_sqlite_under_instance():
    assert database_url({}, "/srv/app/instance") == "sqlite:////srv/app/instance/streampay.sqlite3"
    assert load({}, instance_path="/srv/i")["SQLALCHEMY_DATABASE_URI"] == "sqlite:////srv/i/streampay.sqlite3"


# --- Redis URL ------------------------------------------------------------------------------------------------


def test_redis_url_as_given():
    assert redis_url({"REDIS_URL": "rediss://:pw@r:6380/2", "REDIS_HOST": "ignored"}) == "rediss://:pw@r:6380/2"


def test_redis_url_assembled_from_parts():
    assert redis_url({"REDIS_HOST": "cache"}) == "redis://cache:6379/0"
    env = {"REDIS_HOST": "cache", "REDIS_PORT": "6380", "REDIS_PASSWORD": "s3cr@t/", "REDIS_DB": "4"}
    assert redis_url(env) == "redis://:s3cr%40t%2F@cache:6380/4"


def test_no_redis_means_the_in_process_one():
    assert redis_url({}) is None
    assert load({})["REDIS_URL"] is None


# --- other settings -------------------------------------------------------------------------------------------


def test_development_defaults():
    cfg = load({})
    assert cfg["APP_ENV"] == "development"
    assert cfg["API_PREFIX"] == "/api/v1"
    assert cfg["CORS_ORIGINS"] == ["http://localhost:3000"]
    assert cfg["JWT_SECRET_KEY"] == DEV_JWT_SECRET
    assert cfg["JWT_REFRESH_SECRET"] == DEV_JWT_REFRESH_SECRET
    assert cfg["EMBEDDED_WORKER"] is True
    assert cfg["RATELIMIT_ENABLED"] is True


def test_settings_read_from_the_environment():
    cfg = load(
        {
            "APP_ENV": "Staging",
            "API_PREFIX": "/v2/",
            "CORS_ORIGIN": "https://a.example, https://b.example,",
            "PORT": "8080",
            "EMBEDDED_WORKER": "false",
            "RATELIMIT_ENABLED": "0",
            "JWT_SECRET": SECRET,
        }
    )
    assert cfg["APP_ENV"] == "staging"
    assert cfg["API_PREFIX"] == "/v2"
    assert cfg["CORS_ORIGINS"] == ["https://a.example", "https://b.example"]
    assert cfg["PORT"] == 8080
    assert cfg["EMBEDDED_WORKER"] is False
    assert cfg["RATELIMIT_ENABLED"] is False
    assert cfg["JWT_SECRET_KEY"] == SECRET


def test_csv_page_rows_is_a_setting_of_at_least_one():
    assert load({})["CSV_PAGE_ROWS"] == 1000
    assert load({"CSV_PAGE_ROWS": "250"})["CSV_PAGE_ROWS"] == 250
    with pytest.raises(ConfigError, match="CSV_PAGE_ROWS='0'"):
        load({"CSV_PAGE_ROWS": "0"})


def test_flask_env_is_read_when_app_env_is_not():
    assert load({"FLASK_ENV": "production"})["APP_ENV"] == "production"
    assert load({"FLASK_ENV": "production", "APP_ENV": "development"})["APP_ENV"] == "development"


@pytest.mark.parametrize("name", ["PORT", "THROTTLE_TTL", "THROTTLE_LIMIT", "TRUSTED_PROXIES", "SMTP_PORT"])
def test_whole_numbers_are_checked(name):
    with pytest.raises(ConfigError, match=name):
        load({name: "ten"})
    with pytest.raises(ConfigError, match=name):
        load({name: "-1"})


@pytest.mark.parametrize("name", ["RATELIMIT_ENABLED", "EMBEDDED_WORKER", "STELLAR_FEE_BUMP"])
def test_a_misspelt_switch_is_an_error_not_false(name):
    with pytest.raises(ConfigError, match=f"{name}='flase'"):
        load({name: "flase"})
    assert load({name: "off"})[name] is False
    assert load({name: "Yes"})[name] is True


def test_every_bad_value_is_named_at_once():
    with pytest.raises(ConfigError) as refused:
        load({"PORT": "ten", "STELLAR_NETWORK": "mars", "LOG_LEVEL": "loud", "JWT_EXPIRATION": "soon"})
    message = str(refused.value)
    for named in ("PORT='ten'", "STELLAR_NETWORK='mars'", "LOG_LEVEL='loud'", "JWT_EXPIRATION='soon'"):
        assert named in message


def test_empty_values_mean_the_default_as_in_env_example():
    cfg = load({"PORT": "", "RATELIMIT_ENABLED": "", "LOG_LEVEL": "", "STELLAR_NETWORK": ""})
    assert (cfg["PORT"], cfg["RATELIMIT_ENABLED"], cfg["LOG_LEVEL"], cfg["STELLAR_NETWORK"]) == (
        3000,
        True,
        "INFO",
        "testnet",
    )
    assert load({"LOG_LEVEL": "debug", "STELLAR_NETWORK": "Public"})["LOG_LEVEL"] == "DEBUG"


# --- the production guard, through create_app -----------------------------------------------------------------


def production(**overrides) -> dict:
    """A production configuration that should start, with `overrides` applied."""
    return {
        "APP_ENV": "production",
        "JWT_SECRET_KEY": SECRET,
        "JWT_REFRESH_SECRET": REFRESH_SECRET,
        "SQLALCHEMY_DATABASE_URI": POSTGRES,
        "REDIS_URL": REDIS,
        "EMBEDDED_WORKER": False,
        **overrides,
    }


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path / "instance"))
    return monkeypatch


def test_a_proper_production_config_starts(clean_env):
    app = create_app(production())
    assert app.config["APP_ENV"] == "production"
    assert app.config["SQLALCHEMY_DATABASE_URI"] == POSTGRES


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"JWT_SECRET_KEY": DEV_JWT_SECRET}, "JWT_SECRET must be set"),
        ({"JWT_REFRESH_SECRET": DEV_JWT_REFRESH_SECRET}, "JWT_REFRESH_SECRET must be set"),
        ({"JWT_SECRET_KEY": "too-short"}, "JWT_SECRET must be set"),
        ({"JWT_SECRET_KEY": ""}, "JWT_SECRET must be set"),
        ({"JWT_REFRESH_SECRET": SECRET}, "must differ"),
        ({"SQLALCHEMY_DATABASE_URI": "sqlite:////tmp/streampay.sqlite3"}, "DATABASE_URL must point at PostgreSQL"),
        ({"REDIS_URL": None}, "REDIS_URL must point at Redis"),
        ({"REDIS_URL": ""}, "REDIS_URL must point at Redis"),
        ({"APP_ENV": "prod", "REDIS_URL": None}, "REDIS_URL must point at Redis"),
    ],
)
def test_production_refuses_unsafe_settings(clean_env, overrides, complaint):
    with pytest.raises(ConfigError, match=complaint):
        create_app(production(**overrides))


def test_production_lists_every_problem_at_once(clean_env):
    with pytest.raises(ConfigError) as refused:
        create_app({"APP_ENV": "production"})
    message = str(refused.value)
    for complaint in ("JWT_SECRET must", "JWT_REFRESH_SECRET must", "PostgreSQL", "REDIS_URL"):
        assert complaint in message


def test_development_accepts_the_development_defaults(clean_env):
    app = create_app({"EMBEDDED_WORKER": False})
    assert app.config["JWT_SECRET_KEY"] == DEV_JWT_SECRET
    assert app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")


@pytest.mark.parametrize("variable", ["APP_ENV", "FLASK_ENV"])
def test_production_from_the_environment_with_defaults_is_refused(clean_env, variable):
    clean_env.setenv(variable, "production")
    with pytest.raises(ConfigError, match="refusing to start in production"):
        create_app()


@pytest.mark.parametrize(
    ("unset", "complaint"),
    [
        ("JWT_SECRET", "JWT_SECRET must be set"),
        ("JWT_REFRESH_SECRET", "JWT_REFRESH_SECRET must be set"),
        ("DATABASE_URL", "PostgreSQL"),
        ("REDIS_URL", "REDIS_URL"),
    ],
)
def test_production_from_the_environment_missing_one_setting_is_refused(clean_env, unset, complaint):
    for name, value in {
        "APP_ENV": "production",
        "JWT_SECRET": SECRET,
        "JWT_REFRESH_SECRET": REFRESH_SECRET,
        "DATABASE_URL": "postgres://streampay:pw@db.internal:5432/streampay",
        "REDIS_URL": REDIS,
        "EMBEDDED_WORKER": "false",
    }.items():
        if name != unset:
            clean_env.setenv(name, value)
    with pytest.raises(ConfigError, match=complaint):
        create_app()


def test_production_from_the_environment_starts(clean_env):
    clean_env.setenv("APP_ENV", "production")
    clean_env.setenv("JWT_SECRET", SECRET)
    clean_env.setenv("JWT_REFRESH_SECRET", REFRESH_SECRET)
    clean_env.setenv("DATABASE_HOST", "db.internal")
    clean_env.setenv("DATABASE_PASSWORD", "pw")
    clean_env.setenv("REDIS_HOST", "redis.internal")
    clean_env.setenv("EMBEDDED_WORKER", "false")
    app = create_app()
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg2://postgres:pw@db.internal:5432/streampay"
    assert app.config["REDIS_URL"] == "redis://redis.internal:6379/0"
    assert app.config["JWT_SECRET_KEY"] == SECRET


def test_env_example_lists_every_variable_the_settings_read():
    root = Path(__file__).resolve().parent.parent
    source = (root / "streampay" / "config.py").read_text()
    read = set(re.findall(r"""(?:env\.get|e\.\w+|_int)\(\s*["']([A-Z][A-Z_0-9]+)["']""", source))
    listed = (root / ".env.example").read_text()
    missing = sorted(name for name in read if not re.search(rf"^#?.*\b{name}\b", listed, re.M))
    assert read and not missing, f".env.example does not mention {missing}"
