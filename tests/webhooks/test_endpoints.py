"""Registering, changing and deleting webhook endpoints; who may do what."""

from __future__ import annotations

import uuid

from tests.conftest import bearer, register
from tests.webhooks.conftest import add_endpoint


def test_create_list_update_delete(client, receiver):
    creator = register(client, role="creator")
    made = add_endpoint(client, creator, receiver, "payout.paid", "session.ended", description="books")
    assert made["secret"].startswith("whsec_") and made["enabled"] is True
    assert made["event_types"] == ["payout.paid", "session.ended"]
    auth = bearer(creator["access_token"])

    listed = client.get("/api/v1/webhooks", headers=auth).json
    assert [e["id"] for e in listed] == [made["id"]] and "secret" not in listed[0]
    changed = client.patch(
        f"/api/v1/webhooks/{made['id']}", json={"event_types": ["payout.refused"], "enabled": False}, headers=auth
    )
    assert changed.status_code == 200, changed.json
    assert changed.json["event_types"] == ["payout.refused"] and changed.json["enabled"] is False
    assert client.delete(f"/api/v1/webhooks/{made['id']}", headers=auth).status_code == 204
    assert client.get(f"/api/v1/webhooks/{made['id']}", headers=auth).status_code == 404


def test_bad_input_and_other_peoples_endpoints(client, receiver):
    creator, other = register(client, role="creator"), register(client)
    auth = bearer(creator["access_token"])
    for body, field in (
        ({"url": receiver.url, "event_types": ["payout.lost"]}, "event_types"),
        ({"url": "ftp://example.com/x", "event_types": ["payout.paid"]}, "url"),
        ({"url": receiver.url, "event_types": []}, "event_types"),
    ):
        reply = client.post("/api/v1/webhooks", json=body, headers=auth)
        assert reply.status_code == 422 and field in reply.json["errors"]["json"], reply.json
    unmatched = client.post(
        "/api/v1/webhooks", json={"url": receiver.url, "event_types": ["deposit.unmatched"]}, headers=auth
    )
    assert unmatched.status_code == 422
    platform = client.post(
        "/api/v1/webhooks", json={"url": receiver.url, "event_types": ["payout.paid"], "platform": True}, headers=auth
    )
    assert platform.status_code == 403
    made = add_endpoint(client, creator, receiver, "payout.paid")
    for method in ("get", "patch", "delete"):
        reply = getattr(client, method)(
            f"/api/v1/webhooks/{made['id']}", json={}, headers=bearer(other["access_token"])
        )
        assert reply.status_code == 404
    assert client.get(f"/api/v1/webhooks/{uuid.uuid4()}/deliveries", headers=auth).status_code == 404


def test_private_addresses_are_refused_in_production_settings(app_factory, receiver):
    app = app_factory(WEBHOOK_ALLOW_PRIVATE_URLS=False)
    client = app.test_client()
    creator = register(client, role="creator")
    for url in (receiver.url, "http://169.254.169.254/latest", "http://10.0.0.7/x", "http://[::1]:8080/"):
        reply = client.post(
            "/api/v1/webhooks",
            json={"url": url, "event_types": ["payout.paid"]},
            headers=bearer(creator["access_token"]),
        )
        assert reply.status_code == 422 and "url" in reply.json["errors"], (url, reply.json)
