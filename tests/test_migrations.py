"""The Alembic migrations go up, come down to nothing and go up again, and match the models exactly."""

from __future__ import annotations

import os
import uuid

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from streampay.config import database_url
from streampay.extensions import db, migrations
from tests.conftest import make_app

ON_POSTGRES = os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql"))


def flask_db(app, *args: str) -> str:
    result = app.test_cli_runner().invoke(args=["db", *args])
    assert result.exit_code == 0, f"flask db {' '.join(args)}: {result.output}\n{result.exception!r}"
    return result.output


def tables(app) -> set[str]:
    with app.app_context():
        names = set(inspect(db.engine).get_table_names())
        db.engine.dispose()
    return names - {"alembic_version"}


def versions(app) -> set[str]:
    with app.app_context():
        with db.engine.connect() as conn:
            found = set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
        db.engine.dispose()
    return found


def heads(app) -> set[str]:
    with app.app_context():
        return set(ScriptDirectory.from_config(migrations(app).migrate.get_config()).get_heads())


def model_tables() -> set[str]:
    return set(db.metadata.tables)


def round_trip(app) -> None:
    assert tables(app) == set()
    flask_db(app, "upgrade")
    assert tables(app) == model_tables()
    flask_db(app, "check")  # autogenerate finds no difference between the models and the migrated schema

    flask_db(app, "downgrade", "base")
    assert tables(app) == set()
    assert versions(app) == set()

    flask_db(app, "upgrade")
    assert tables(app) == model_tables()
    flask_db(app, "check")
    assert versions(app) == heads(app)


def test_round_trip_on_sqlite(tmp_path):
    app = make_app("sqlite:///" + str(tmp_path / "migrations.sqlite3"))
    round_trip(app)


@pytest.fixture
def scratch_postgres():
    """A database of its own, so the shared test database is never migrated down."""
    server = make_url(database_url(os.environ, ""))
    name = f"sp_migrations_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.skipif(not ON_POSTGRES, reason="needs DATABASE_URL pointing at PostgreSQL")
def test_round_trip_on_postgres(scratch_postgres):
    app = make_app(scratch_postgres)
    round_trip(app)
