"""The database pool: a connection is pinged before use only after sitting idle (DB_PING_AFTER_IDLE_SECONDS)."""

from __future__ import annotations

import os
import time

import pytest
from sqlalchemy import make_url

from streampay.extensions import db


def _on_postgresql() -> None:
    if not os.environ.get("DATABASE_URL", "").startswith("postgresql"):
        pytest.skip("the idle ping is PostgreSQL's (SQLite has no server to lose)")


def _kill_the_pooled_connection(app) -> None:
    """pg_terminate_backend on the one connection the app's pool holds, from a connection of the test's own."""
    import psycopg2

    with app.app_context():
        raw = db.engine.raw_connection()
        try:
            with raw.cursor() as cur:
                cur.execute("SELECT pg_backend_pid()")
                pid = cur.fetchone()[0]
            raw.rollback()
        finally:
            raw.close()
        assert db.engine.pool.checkedin() == 1
    url = make_url(os.environ["DATABASE_URL"]).set(drivername="postgresql")
    admin = psycopg2.connect(url.render_as_string(hide_password=False))
    try:
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
    finally:
        admin.close()


def test_a_connection_idle_past_the_ping_age_is_pinged_and_replaced_before_use(app_factory):
    _on_postgresql()
    app = app_factory(DB_PING_AFTER_IDLE_SECONDS=1, SQLALCHEMY_ENGINE_OPTIONS={"pool_size": 1, "max_overflow": 0})
    client = app.test_client()
    assert client.get("/readyz").status_code == 200
    _kill_the_pooled_connection(app)
    time.sleep(1.2)
    assert client.get("/readyz").status_code == 200  # pinged at checkout, found dead, replaced


def test_a_connection_used_moments_ago_is_not_pinged_and_a_failure_renews_the_pool(app_factory):
    """The trade-off of pinging only idle connections: a backend killed under a connection in use moments ago fails
    the request that finds it (a 503 with Retry-After), and that failure renews the pool for the next one."""
    _on_postgresql()
    app = app_factory(DB_PING_AFTER_IDLE_SECONDS=3600, SQLALCHEMY_ENGINE_OPTIONS={"pool_size": 1, "max_overflow": 0})
    client = app.test_client()
    assert client.get("/readyz").status_code == 200
    _kill_the_pooled_connection(app)
    first = client.get("/readyz")
    assert first.status_code == 503 and first.json["errors"]["checks"]["database"] == "unavailable", first.json
    assert client.get("/readyz").status_code == 200
