"""Test wiring: real PostgreSQL + Redis when DATABASE_URL / REDIS_URL are set, else SQLite + fakeredis.

The schema always comes from the Alembic migrations, so every run also proves they apply.
Each test gets a fresh app; afterwards every table is emptied and Redis flushed.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from sqlalchemy import create_engine, event, make_url, text
from werkzeug.routing import Rule

from streampay import close, create_app
from streampay.config import database_url
from streampay.extensions import db, redis_client, upgrade

TEST_CONFIG = {
    "TESTING": True,
    "EMBEDDED_WORKER": False,
    "LOG_LEVEL": "WARNING",
    # Argon2id at its cheapest: the hash is exercised, not its cost.
    "PASSWORD_HASH_TIME_COST": 1,
    "PASSWORD_HASH_MEMORY_KIB": 1024,
    # A test's server takes new sockets however long its meter calls took (a busy CI machine makes some slow);
    # the admission rule itself is tested with its own setting.
    "WS_ADMIT_MAX_METER_WAIT_MS": 60_000,
    # ... and neither sheds nor refuses for its loop's lateness (a thread's, in a process that runs the tests too);
    # shedding is tested on the web dyno, with its own setting.
    "WS_SHED_LAG_MS": 60_000,
}
PASSWORD = "correct-horse-9"


def _compile_each_url_builder_once() -> None:
    """Every test builds an app, and every app compiles two URL builders per route from an AST (werkzeug's
    `Rule._compile_builder`): a tenth of a second an app, a fifth of the suite's CPU. A builder depends only on its
    rule's parsed parts and defaults, so within a run each is compiled once and the function reused."""
    compile_builder = Rule._compile_builder
    builders: dict = {}

    def compiled(self: Rule, append_unknown: bool = True):
        defaults = self.defaults or {}
        if any(name in self._converters for name in defaults):  # folded through a converter: not by the rule alone
            return compile_builder(self, append_unknown)
        key = (self.rule, tuple(self._trace), repr(sorted(defaults.items())), append_unknown)
        if key not in builders:
            builders[key] = compile_builder(self, append_unknown)
        return builders[key]

    Rule._compile_builder = compiled


_compile_each_url_builder_once()
_serial = itertools.count()


@pytest.fixture(scope="session")
def db_url(tmp_path_factory):
    if os.environ.get("DATABASE_URL"):
        yield database_url(os.environ, "")
        return
    # In memory where the machine has it (/dev/shm): a commit's fsync proves nothing the tests look at, and on a
    # disk it costs tens of milliseconds, thousands of times over.
    in_memory = Path("/dev/shm")
    if in_memory.is_dir() and os.access(in_memory, os.W_OK):
        folder = Path(tempfile.mkdtemp(prefix="streampay-tests-", dir=in_memory))
    else:
        folder = tmp_path_factory.mktemp("db")
    yield f"sqlite:///{folder / 'test.sqlite3'}"
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def migrated(db_url, tmp_path_factory) -> str:
    app = create_app({**TEST_CONFIG, "SQLALCHEMY_DATABASE_URI": db_url})
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return db_url


def make_app(db_url: str, **overrides):
    return create_app({**TEST_CONFIG, "SQLALCHEMY_DATABASE_URI": db_url, **overrides})


def empty_everything(app) -> None:
    with app.app_context():
        tables = [t.name for t in reversed(db.metadata.sorted_tables)]
        with db.engine.begin() as conn:
            # DELETE, children first: on tables this small it takes about a tenth of TRUNCATE's time (TRUNCATE
            # makes new files for every table), paid after every test.
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))
            if conn.dialect.name == "postgresql":
                restart_sequences(conn)
        redis_client().flushdb()
        db.session.remove()
    close(app)


def truncate_everything(db_url: str) -> None:
    """Every table made anew (PostgreSQL): no dead rows of earlier tests, no statistics."""
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            tables = [t.name for t in db.metadata.sorted_tables]
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    finally:
        engine.dispose()


def restart_sequences(conn) -> None:
    """Every id sequence starts again at 1, as after TRUNCATE ... RESTART IDENTITY."""
    sequences = conn.execute(
        text("SELECT sequence_name FROM information_schema.sequences WHERE sequence_schema = current_schema()")
    ).scalars()
    calls = [f"setval('{name}', 1, false)" for name in sequences]
    if calls:
        conn.execute(text(f"SELECT {', '.join(calls)}"))


@pytest.fixture
def app_factory(migrated):
    """Build an app with extra settings; each is cleaned up after the test."""
    made = []

    def build(**overrides):
        app = make_app(migrated, **overrides)
        made.append(app)
        return app

    yield build
    for app in made:
        empty_everything(app)


@pytest.fixture
def app(app_factory):
    return app_factory()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@contextlib.contextmanager
def autocommit_of(app, fragment: str):
    """Yields a list that gets, for each statement containing `fragment`, whether its connection ran it without a
    transaction (psycopg2's autocommit). PostgreSQL only: skips the test elsewhere."""
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("reads run without a transaction on PostgreSQL only")
        engine = db.engine
    seen: list[bool] = []

    def record(conn, _cursor, statement, *_):
        if fragment in statement:
            seen.append(conn.connection.dbapi_connection.autocommit)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def assert_pool_gives_transactions(app) -> None:
    """Every connection idle in the app's pool runs transactions (a read that switched them off switched back)."""
    with app.app_context():
        idle = [db.engine.raw_connection() for _ in range(db.engine.pool.checkedin())]
        try:
            assert idle and not any(c.dbapi_connection.autocommit for c in idle)
        finally:
            for c in idle:
                c.close()


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def register(client, role: str = "viewer", **fields) -> dict:
    """Register a fresh user through the API; returns the whole reply (tokens and user)."""
    n = next(_serial)
    body = {"email": f"user{n}@example.com", "username": f"user{n}", "password": PASSWORD, "role": role, **fields}
    reply = client.post("/api/v1/auth/register", json=body)
    assert reply.status_code == 201, reply.json
    return reply.json


@pytest.fixture
def make_admin(app, runner):
    """An admin made the only way admins are made: the CLI. Returns a signed-in reply."""

    def make() -> dict:
        n = next(_serial)
        email = f"admin{n}@example.com"
        result = runner.invoke(
            args=["users", "create", email, "--username", f"admin{n}", "--password", PASSWORD, "--role", "admin"]
        )
        assert result.exit_code == 0, result.output
        reply = app.test_client().post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert reply.status_code == 200, reply.json
        return reply.json

    return make


# --- a database of the tests' own -------------------------------------------------------------------------------
# The tests empty every table. Pointed at PostgreSQL by DATABASE_URL, they make a database of their own on that
# server for the session (the processes they start inherit it) and drop it afterwards, so a development
# database named by DATABASE_URL is never erased.


def pytest_sessionstart(session):
    _redis_database_of_this_worker()
    given = os.environ.get("DATABASE_URL")
    if not given or not database_url(os.environ, "").startswith("postgresql"):
        return
    server = make_url(database_url(os.environ, ""))
    own = server.set(database=f"{server.database}_tests_{os.getpid()}"[-63:])
    with _admin(server) as conn:
        conn.execute(text(f'CREATE DATABASE "{own.database}"'))
    session.config.stash[_GIVEN_DATABASE] = given
    os.environ["DATABASE_URL"] = own.render_as_string(hide_password=False)


def pytest_sessionfinish(session):
    given = session.config.stash.get(_GIVEN_DATABASE, None)
    if given is None:
        return
    own = make_url(os.environ["DATABASE_URL"])
    os.environ["DATABASE_URL"] = given
    with _admin(own) as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{own.database}" WITH (FORCE)'))


_GIVEN_DATABASE = pytest.StashKey[str]()


def _redis_database_of_this_worker() -> None:
    """Run by pytest-xdist (`pytest -n 2`), each worker empties a Redis database of its own: REDIS_URL's for the
    first, the next one up for the second, and so on (the processes the tests start inherit it)."""
    worker, given = os.environ.get("PYTEST_XDIST_WORKER"), os.environ.get("REDIS_URL")
    if not worker or not given:
        return
    parts = urlsplit(given)
    number = (int(parts.path.strip("/") or 0) + int(worker.removeprefix("gw"))) % 16
    os.environ["REDIS_URL"] = urlunsplit(parts._replace(path=f"/{number}"))
    redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()  # what an earlier run left there


@contextlib.contextmanager
def _admin(server):
    engine = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()
