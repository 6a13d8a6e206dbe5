from __future__ import annotations

import uuid

from flask.views import MethodView
from flask_jwt_extended import current_user
from flask_smorest import Blueprint

from streampay.idempotency import idempotent
from streampay.pagination import page_of
from streampay.users.access import auth_required
from streampay.webhooks import service
from streampay.webhooks.schemas import (
    DeliverySchema,
    EndpointCreateSchema,
    EndpointSchema,
    EndpointUpdateSchema,
    EndpointWithSecretSchema,
)

blp = Blueprint(
    "webhooks",
    __name__,
    description="Endpoints that hear your events, signed per Standard Webhooks; their delivery log.",
)


@blp.route("")
class Endpoints(MethodView):
    decorators = [auth_required()]

    @blp.response(200, EndpointSchema(many=True))
    @blp.paginate()
    def get(self, pagination_parameters):
        """Your webhook endpoints (an admin's platform-wide ones among them)."""
        return page_of(service.listing(current_user), pagination_parameters)

    @idempotent
    @blp.arguments(EndpointCreateSchema)
    @blp.response(201, EndpointWithSecretSchema)
    def post(self, fields):
        """Register an endpoint for some event types; the reply holds its signing secret."""
        return service.create(current_user, fields)


@blp.route("/<uuid:endpoint_id>")
class EndpointItem(MethodView):
    decorators = [auth_required()]

    @blp.response(200, EndpointSchema)
    def get(self, endpoint_id: uuid.UUID):
        """One of your endpoints."""
        return service.owned(current_user, endpoint_id)

    @blp.arguments(EndpointUpdateSchema)
    @blp.response(200, EndpointSchema)
    def patch(self, changes, endpoint_id: uuid.UUID):
        """Change its URL, events or description; switch it on again after it was disabled."""
        return service.update(current_user, endpoint_id, changes)

    @blp.response(204)
    def delete(self, endpoint_id: uuid.UUID):
        """Delete it and its delivery log."""
        service.delete(current_user, endpoint_id)


@blp.route("/<uuid:endpoint_id>/rotate-secret", methods=["POST"])
@auth_required()
@blp.response(200, EndpointWithSecretSchema)
def rotate(endpoint_id: uuid.UUID):
    """A new signing secret; for 24 hours deliveries carry a signature with the old one too."""
    return service.rotate(current_user, endpoint_id)


@blp.route("/<uuid:endpoint_id>/test", methods=["POST"])
@auth_required()
@blp.response(202, DeliverySchema)
def test(endpoint_id: uuid.UUID):
    """Send a `webhook.test` event to this endpoint now; follow it in the delivery log."""
    return service.send_test(current_user, endpoint_id)


@blp.route("/<uuid:endpoint_id>/deliveries", methods=["GET"])
@auth_required()
@blp.response(200, DeliverySchema(many=True))
@blp.paginate()
def deliveries(endpoint_id: uuid.UUID, pagination_parameters):
    """The delivery log, newest first: status, response code, duration, attempts."""
    return page_of(service.deliveries(current_user, endpoint_id), pagination_parameters)


@blp.route("/<uuid:endpoint_id>/deliveries/<int:delivery_id>/redeliver", methods=["POST"])
@auth_required()
@blp.response(202, DeliverySchema)
def redeliver(endpoint_id: uuid.UUID, delivery_id: int):
    """Deliver this event again (with fresh retries)."""
    return service.redeliver(current_user, endpoint_id, delivery_id)
