from __future__ import annotations

from flask import after_this_request
from flask_jwt_extended import current_user, get_jwt
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from streampay.admin import dashboard
from streampay.users.access import auth_required
from streampay.users.models import Role

blp = Blueprint("admin", __name__, description="What an admin opens in a browser: RQ's dashboard.")


class DashboardSessionSchema(Schema):
    url = fields.String(required=True, metadata={"description": "Where the dashboard is.", "example": "/admin/rq/"})
    expires_in = fields.Integer(required=True, metadata={"description": "Seconds the pass lives."})


class ClosedSchema(Schema):
    success = fields.Boolean(required=True)


@blp.route("/dashboard-session", methods=["POST"])
@auth_required(Role.ADMIN)
@blp.response(201, DashboardSessionSchema)
def open_dashboard_session():
    """Open RQ's dashboard in this browser: sets a short-lived pass cookie (HttpOnly, SameSite=Strict, path
    /admin/rq) for the admin of the presented token. Signing out of that sign-in closes it too."""
    reply, set_cookies = dashboard.open_session(current_user, get_jwt())
    after_this_request(set_cookies)
    return reply


@blp.route("/dashboard-session", methods=["DELETE"])
@auth_required(Role.ADMIN)
@blp.response(200, ClosedSchema)
def close_dashboard_session():
    """Forget the dashboard's pass in this browser."""
    after_this_request(dashboard.close_session)
    return {"success": True}
