"""Liveness and readiness probes: cheap, unauthenticated, no side effects."""

from __future__ import annotations

import logging

from flask import current_app, jsonify
from flask_smorest import Blueprint
from marshmallow import Schema, fields
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from streampay.errors import error_body
from streampay.extensions import MIGRATIONS, db, redis_client
from streampay.outages import RETRY_AFTER_SECONDS
from streampay.users.access import PUBLIC

log = logging.getLogger(__name__)
blp = Blueprint("health", __name__, description="Probes for load balancers and orchestrators.")


class HealthSchema(Schema):
    status = fields.String(required=True, metadata={"example": "ok"})
    checks = fields.Dict(keys=fields.String(), values=fields.String())


@blp.route("/healthz", methods=["GET"])
@blp.doc(**PUBLIC)
@blp.response(200, HealthSchema)
def healthz():
    """The process is alive."""
    return {"status": "ok"}


@blp.route("/readyz", methods=["GET"])
@blp.doc(**PUBLIC)
@blp.response(200, HealthSchema)
@blp.alt_response(503, description="The database or Redis does not answer, or the schema is behind the migrations.")
def readyz():
    """The database and Redis both answer, and the database's schema is at the migrations' head."""
    checks = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
        checks["schema"] = "ok" if _applied_revisions() == _migration_heads() else "behind"
    except Exception as exc:  # any driver error means not ready
        log.warning("readiness: database: %s", exc.__class__.__name__)
        checks["database"] = "unavailable"
    finally:
        db.session.remove()
    try:
        redis_client().ping()
        checks["redis"] = "ok"
    except Exception as exc:
        log.warning("readiness: redis: %s", exc.__class__.__name__)
        checks["redis"] = "unavailable"
    if checks.get("schema") == "behind":
        log.warning("readiness: the database schema is behind the migrations; run `flask db upgrade`")
    if set(checks.values()) != {"ok"}:
        # A Response of its own: the 200 schema would drop the error shape's fields.
        down = ", ".join(name for name, state in checks.items() if state != "ok")
        reply = jsonify(error_body(503, "Service Unavailable", f"Not ready: {down} unavailable.", {"checks": checks}))
        reply.status_code = 503
        reply.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return reply
    return {"status": "ok", "checks": checks}


def _applied_revisions() -> set[str]:
    try:
        return set(db.session.scalars(text("SELECT version_num FROM alembic_version")))
    except SQLAlchemyError:  # no alembic_version table: nothing applied yet
        return set()


def _migration_heads() -> set[str]:
    heads = current_app.extensions.get("streampay.migration_heads")
    if heads is None:
        from alembic.script import ScriptDirectory  # a server imports it before it serves (streampay.preload)

        heads = current_app.extensions["streampay.migration_heads"] = set(ScriptDirectory(MIGRATIONS).get_heads())
    return heads
