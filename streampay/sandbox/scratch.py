"""What a benchmark runs on: a scratch PostgreSQL database and Redis DB, made empty and emptied again on the way out,
the options that name them, and the environment of the app under test."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def add_options(parser: argparse.ArgumentParser, db_name: str, redis_db: int | None = None) -> None:
    """--pg and --db-name (and --redis, given the benchmark's own Redis DB number)."""
    parser.add_argument(
        "--pg",
        default=os.environ.get("BENCH_PG_URL", PG_ADMIN_URL),
        help="a PostgreSQL database to make the scratch one from (BENCH_PG_URL)",
    )
    parser.add_argument("--db-name", default=db_name, help=f"the scratch database ({db_name})")
    if redis_db is not None:
        default = os.environ.get("BENCH_REDIS_URL", f"redis://127.0.0.1:6379/{redis_db}")
        parser.add_argument("--redis", default=default, help=f"the Redis DB, flushed (BENCH_REDIS_URL; {default})")


def database_url(admin_url: str, name: str) -> str:
    """The URL of database `name` on the server of `admin_url`."""
    return f"{admin_url.rpartition('/')[0]}/{name}"


def admin_connection(admin_url: str):
    import psycopg2

    conn = psycopg2.connect(admin_url)
    conn.autocommit = True
    return conn


@contextlib.contextmanager
def scratch_database(admin_url: str, name: str) -> Iterator[None]:
    """A fresh, empty database `name`, dropped again on the way out."""
    from psycopg2 import sql

    def run(statement):
        conn = admin_connection(admin_url)
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
        finally:
            conn.close()

    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    run(drop)
    run(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield
    finally:
        run(drop)


@contextlib.contextmanager
def scratch_redis(url: str):
    """A client of the Redis DB at `url`, flushed before and after."""
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


def app_env(pg: str, db_name: str, redis: str, **settings: str) -> dict:
    """The environment of a benchmark's app: its scratch database and Redis DB, fresh secrets, quiet logs, no
    embedded worker; `settings` on top."""
    return {
        **os.environ,
        "APP_ENV": "development",
        "DATABASE_URL": database_url(pg, db_name),
        "REDIS_URL": redis,
        "JWT_SECRET": os.urandom(32).hex(),
        "JWT_REFRESH_SECRET": os.urandom(32).hex(),
        "LOG_LEVEL": "WARNING",
        "EMBEDDED_WORKER": "false",
        **settings,
    }
