"""Endpoints: register, change, rotate the secret, test; deliveries: read and redeliver."""

from __future__ import annotations

import base64
import secrets
import uuid
from datetime import timedelta

from sqlalchemy import Select, func, select

from streampay.dbtypes import utcnow
from streampay.errors import Conflict, Forbidden, Invalid, NotFound
from streampay.events.models import PLATFORM_ONLY, TEST_EVENT, Event
from streampay.events.outbox import new_id
from streampay.extensions import db
from streampay.users.models import Role, User
from streampay.webhooks import delivery as sender
from streampay.webhooks.addresses import AddressRefused, check_url
from streampay.webhooks.models import Delivery, DeliveryStatus, Endpoint

MAX_ENDPOINTS = 20
ROTATION_GRACE = timedelta(hours=24)


def new_secret() -> str:
    """A Standard Webhooks secret: whsec_ and 24 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _check(user: User, url: str | None, event_types: list[str] | None, platform: bool) -> None:
    if url is not None:
        try:
            check_url(url)
        except AddressRefused as exc:
            raise Invalid("That URL cannot receive webhooks.", {"url": [str(exc)]}) from exc
    if platform and user.role is not Role.ADMIN:
        raise Forbidden("Only an admin registers platform-wide endpoints.")
    if event_types is not None and not platform:
        admin_only = sorted(set(event_types) & PLATFORM_ONLY)
        if admin_only:
            raise Invalid("Those events go to platform-wide endpoints only.", {"event_types": admin_only})


def owned(user: User, endpoint_id: uuid.UUID) -> Endpoint:
    endpoint = db.session.get(Endpoint, endpoint_id)
    if endpoint is None or endpoint.user_id != user.id:
        raise NotFound("No such webhook endpoint.")
    return endpoint


def listing(user: User) -> Select:
    return select(Endpoint).where(Endpoint.user_id == user.id).order_by(Endpoint.created_at, Endpoint.id)


def create(user: User, fields: dict) -> Endpoint:
    platform = fields.get("platform", False)
    _check(user, fields["url"], fields["event_types"], platform)
    count = db.session.scalar(select(func.count()).select_from(Endpoint).where(Endpoint.user_id == user.id))
    if count >= MAX_ENDPOINTS:
        raise Invalid(f"At most {MAX_ENDPOINTS} endpoints per account; delete one first.")
    endpoint = Endpoint(
        user_id=user.id,
        platform=platform,
        url=fields["url"],
        event_types=sorted(set(fields["event_types"])),
        description=fields.get("description"),
        secret=new_secret(),
        enabled=True,
        consecutive_failures=0,
    )
    db.session.add(endpoint)
    db.session.commit()
    return endpoint


def update(user: User, endpoint_id: uuid.UUID, changes: dict) -> Endpoint:
    endpoint = owned(user, endpoint_id)
    _check(user, changes.get("url"), changes.get("event_types"), endpoint.platform)
    if "url" in changes:
        endpoint.url = changes["url"]
    if "event_types" in changes:
        endpoint.event_types = sorted(set(changes["event_types"]))
    if "description" in changes:
        endpoint.description = changes["description"]
    if changes.get("enabled") is True and not endpoint.enabled:
        endpoint.enabled, endpoint.disabled_reason, endpoint.consecutive_failures = True, None, 0
    elif changes.get("enabled") is False and endpoint.enabled:
        endpoint.enabled, endpoint.disabled_reason = False, "Switched off by its owner."
    db.session.commit()
    return endpoint


def delete(user: User, endpoint_id: uuid.UUID) -> None:
    db.session.delete(owned(user, endpoint_id))
    db.session.commit()


def rotate(user: User, endpoint_id: uuid.UUID) -> Endpoint:
    """A new secret; the old one keeps signing beside it for a day, so receivers switch without a gap."""
    endpoint = owned(user, endpoint_id)
    endpoint.previous_secret, endpoint.previous_secret_expires_at = endpoint.secret, utcnow() + ROTATION_GRACE
    endpoint.secret = new_secret()
    db.session.commit()
    return endpoint


def send_test(user: User, endpoint_id: uuid.UUID) -> Delivery:
    """A `webhook.test` event for this endpoint alone, delivered like any other."""
    endpoint = owned(user, endpoint_id)
    event = Event(
        id=new_id(),
        type=TEST_EVENT,
        user_ids=[],
        data={"endpoint_id": str(endpoint.id), "message": "A test event from StreamPay."},
        created_at=utcnow(),
        dispatched_at=utcnow(),
    )
    delivery = Delivery(endpoint=endpoint, event=event, status=DeliveryStatus.PENDING, attempts=0)
    db.session.add_all([event, delivery])
    db.session.commit()
    sender.enqueue(delivery.id)
    return delivery


def deliveries(user: User, endpoint_id: uuid.UUID) -> Select:
    owned(user, endpoint_id)
    return (
        select(Delivery)
        .where(Delivery.endpoint_id == endpoint_id)
        .order_by(Delivery.created_at.desc(), Delivery.id.desc())
    )


def redeliver(user: User, endpoint_id: uuid.UUID, delivery_id: int) -> Delivery:
    """Start a delivery over (after a fix on the receiver's side); its attempts count on."""
    endpoint = owned(user, endpoint_id)
    delivery = db.session.get(Delivery, delivery_id)
    if delivery is None or delivery.endpoint_id != endpoint.id:
        raise NotFound("No such delivery for this endpoint.")
    if not endpoint.enabled:
        raise Conflict("This endpoint is switched off; switch it on (PATCH enabled: true) first.")
    if delivery.status is not DeliveryStatus.PENDING:
        delivery.move_to(DeliveryStatus.PENDING)
    db.session.commit()
    sender.enqueue(delivery.id)
    return delivery
