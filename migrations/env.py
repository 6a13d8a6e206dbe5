"""Alembic environment: the Flask app's engine and models (flask-migrate)."""

import logging

from alembic import context
from flask import current_app
from sqlalchemy.types import TypeDecorator

logger = logging.getLogger("alembic.env")
config = context.config
target_db = current_app.extensions["migrate"].db


def _url() -> str:
    return target_db.engine.url.render_as_string(hide_password=False).replace("%", "%%")


def _render_item(type_, obj, _autogen_context):
    # Migrations stand alone: an application column type is written as the SQLAlchemy type it stores as.
    if type_ == "type" and isinstance(obj, TypeDecorator):
        return f"sa.{obj.impl!r}"
    return False


def _include_object(obj, _name, type_, reflected, _compare_to) -> bool:
    # An index the models make on one database only (info["dialect"]) is compared on that database alone.
    dialect = obj.info.get("dialect") if type_ == "index" and not reflected else None
    return dialect is None or dialect == target_db.engine.dialect.name


def _options() -> dict:
    return {
        "target_metadata": target_db.metadata,
        "render_item": _render_item,
        "include_object": _include_object,
        **current_app.extensions["migrate"].configure_args,
    }


def run_migrations_offline():
    context.configure(url=_url(), literal_binds=True, **_options())
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    def skip_empty(context_, revision, directives):
        # `flask db migrate` with no model change writes no empty revision.
        if getattr(config.cmd_opts, "autogenerate", False) and directives[0].upgrade_ops.is_empty():
            directives[:] = []
            logger.info("No changes in schema detected.")

    options = _options()
    options.setdefault("process_revision_directives", skip_empty)
    with target_db.engine.connect() as connection:
        context.configure(connection=connection, **options)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
