"""Liveness and readiness probes: cheap, unauthenticated, no side effects."""

from __future__ import annotations

import logging

from flask import jsonify, make_response
from flask_smorest import Blueprint
from marshmallow import Schema, fields
from sqlalchemy import text

from streampay.auth.access import PUBLIC
from streampay.errors import RETRY_AFTER_SECONDS, error_body
from streampay.extensions import db, redis_client

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
@blp.alt_response(503, description="The database or Redis does not answer.")
def readyz():
    """The database and Redis both answer."""
    checks = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
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
    if set(checks.values()) != {"ok"}:
        down = ", ".join(name for name, state in checks.items() if state != "ok")
        body = error_body(503, "Service Unavailable", f"Not ready: {down} unavailable.", {"checks": checks})
        # A Response as it is: the 200 schema would strip the error shape.
        return make_response(jsonify(body), 503, {"Retry-After": str(RETRY_AFTER_SECONDS)})
    return {"status": "ok", "checks": checks}
