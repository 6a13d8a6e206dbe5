"""The app's shared extension objects, created unbound and bound by `create_app`."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING

from flask import Flask, current_app
from flask_cors import CORS
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData, event, exc
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import Pool

if TYPE_CHECKING:
    import redis

# Named constraints so Alembic can alter and drop them on SQLite and PostgreSQL alike.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


db = SQLAlchemy(model_class=Base)


@event.listens_for(Engine, "connect")
def _sqlite_connect(dbapi_connection, _record):
    # pysqlite's own transaction handling breaks SAVEPOINT; let SQLAlchemy emit BEGIN itself.
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA busy_timeout = 30000")


@event.listens_for(Engine, "begin")
def _sqlite_begin(conn):
    # IMMEDIATE takes SQLite's write lock up front (waiting for it), so two transactions never
    # deadlock upgrading from read to write: SQLite's stand-in for PostgreSQL's row locks.
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def ping_when_idle(engine: Engine, seconds: float) -> None:
    """At checkout, ping a pooled connection only if it sat idle in the pool `seconds` or longer, where
    pool_pre_ping pings at every checkout: a round trip for every request and every socket frame that reads the
    database. One that was in use moments ago is alive, or its failure was seen: a disconnect error in a request
    (a 503) invalidates every connection the pool made before it, so the next request connects afresh."""

    @event.listens_for(engine, "checkin")
    def _idle_since(_raw, record) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(raw, record, _proxy) -> None:
        since = record.info.get(_IDLE_SINCE)  # none yet: connected for this checkout, which proved it alive
        if since is None or time.monotonic() - since < seconds:
            return
        try:
            engine.dialect.do_ping(raw)  # psycopg2's sends the SELECT 1 outside a transaction
        except engine.dialect.loaded_dbapi.Error as error:
            if engine.dialect.is_disconnect(error, raw, None):
                raise exc.DisconnectionError() from error  # the pool drops it and checks out a new one
            raise


_IDLE_SINCE = "streampay.idle_since"


def without_transaction() -> None:
    """The current request's next statements run without a transaction around them, on PostgreSQL, if none is
    open yet: a read of one statement (each sees its own snapshot either way) is spared the BEGIN and ROLLBACK
    round trips. psycopg2's own switch sends nothing (SQLAlchemy's isolation level option sends a SET each way),
    and the connection goes back to the pool with transactions on (`_with_transactions_again`)."""
    if db.session.get_bind().dialect.name != "postgresql":
        return
    from psycopg2.extensions import TRANSACTION_STATUS_IDLE

    pooled = db.session.connection().connection
    raw = pooled.dbapi_connection
    if raw is not None and not raw.autocommit and raw.get_transaction_status() == TRANSACTION_STATUS_IDLE:
        raw.autocommit = True
        pooled.info[_SWITCHED] = True


_SWITCHED = "streampay.without_transaction"


@event.listens_for(Pool, "checkin")
def _with_transactions_again(raw, record) -> None:
    """Whatever happened in the request, a connection it switched goes back to the pool with transactions on
    (others, such as an engine made to autocommit, are left as they are)."""
    if record is not None and record.info.pop(_SWITCHED, False) and raw is not None and not raw.closed:
        raw.autocommit = False


MIGRATIONS = str(Path(__file__).resolve().parent.parent / "migrations")


def migrations(app: Flask | None = None):
    """flask-migrate's record for the app (what `flask db` and `upgrade` read), made at first use.

    Alembic takes a third of a second to import: a command that does not migrate should not pay for it.
    """
    app = app or current_app
    if "migrate" not in app.extensions:
        from flask_migrate import Migrate

        Migrate(render_as_batch=True, compare_type=True).init_app(app, db, directory=MIGRATIONS)
    return app.extensions["migrate"]


def upgrade(revision: str = "head") -> None:
    """Apply the migrations up to `revision`, in the current app's context."""
    migrations()
    from flask_migrate import upgrade as alembic_upgrade

    alembic_upgrade(revision=revision)


cors = CORS()
limiter = Limiter(key_func=get_remote_address)


def redis_client() -> redis.Redis:
    """The app's Redis client: real when REDIS_URL is set, otherwise the in-process one."""
    extensions = current_app.extensions
    if "streampay.redis" not in extensions:
        _connect_redis(current_app)
    return extensions["streampay.redis"]


def init_redis(app: Flask, lazily: bool = False) -> None:
    """The app's Redis client, and flask-limiter's storage on it; `lazily`, made at its first use instead (a
    `flask` command that never touches Redis does not import the in-process one)."""
    # flask-limiter stores its counters through the app's connection pool (the limiter is bound at start-up).
    app.config["RATELIMIT_STORAGE_URI"] = "redis://"
    if not lazily:
        app.config["RATELIMIT_STORAGE_OPTIONS"] = {"connection_pool": _connect_redis(app).connection_pool}


def _connect_redis(app: Flask) -> redis.Redis:
    import redis  # at first use: a `flask` command that never touches Redis does not load its client

    url = app.config["REDIS_URL"]
    if url:
        # A blocking pool: with thousands of socket threads, a thread waits its turn for a connection
        # instead of failing when every connection is busy (redis-py's default pool raises at 100).
        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=app.config["REDIS_MAX_CONNECTIONS"],
            timeout=app.config["REDIS_POOL_TIMEOUT"],
            health_check_interval=30,
        )
        client = redis.Redis(connection_pool=pool)
    else:
        # One in-process server per app, shared by the limiter, the queues and the services.
        import fakeredis

        server = fakeredis.FakeServer()
        client = fakeredis.FakeRedis(server=server)
        # streampay.embedded serves it to the checkout's other processes when this one is the server.
        app.extensions["streampay.fakeserver"] = server
    app.extensions["streampay.redis"] = client
    return client
