"""Deliveries to a real local receiver that verifies every signature with the standardwebhooks library."""

from __future__ import annotations

import socket
from datetime import timedelta
from urllib.parse import urlsplit

from sqlalchemy import update
from standardwebhooks.webhooks import Webhook

from streampay.dbtypes import utcnow
from streampay.events.models import Event
from streampay.extensions import db
from streampay.jobs import queue
from streampay.webhooks.delivery import prune
from streampay.webhooks.models import Delivery
from tests.conftest import bearer, register
from tests.webhooks.conftest import add_endpoint, deliveries, run_jobs


def test_a_test_event_is_signed_retried_and_counted_once(app, client, receiver):
    creator = register(client, role="creator")
    endpoint = add_endpoint(client, creator, receiver, "payout.paid")
    receiver.answers = [500, 500]  # down for a while, then up
    sent = client.post(f"/api/v1/webhooks/{endpoint['id']}/test", headers=bearer(creator["access_token"]))
    assert sent.status_code == 202 and sent.json["status"] == "pending"
    run_jobs(app)
    [event] = receiver.events.values()
    assert event["type"] == "webhook.test" and event["data"]["endpoint_id"] == endpoint["id"]
    assert set(event) == {"id", "type", "timestamp", "data"}
    assert receiver.deliveries[event["id"]] == 3 and receiver.rejected == []
    [log] = deliveries(client, creator, endpoint)
    assert log["status"] == "succeeded" and log["attempts"] == 3 and log["response_code"] == 200
    assert log["event_id"] == event["id"] and log["duration_ms"] is not None


def test_gone_disables_the_endpoint(app, client, receiver):
    creator = register(client, role="creator")
    endpoint = add_endpoint(client, creator, receiver, "payout.paid")
    receiver.answers = [410]
    client.post(f"/api/v1/webhooks/{endpoint['id']}/test", headers=bearer(creator["access_token"]))
    run_jobs(app)
    [log] = deliveries(client, creator, endpoint)
    assert log["status"] == "failed" and log["attempts"] == 1 and log["response_code"] == 410
    state = client.get(f"/api/v1/webhooks/{endpoint['id']}", headers=bearer(creator["access_token"])).json
    assert state["enabled"] is False and "410" in state["disabled_reason"]


def test_repeated_failure_disables_and_redelivery_after_the_fix(app_factory, receiver):
    app = app_factory(WEBHOOK_RETRY_SCHEDULE=[0, 0, 0, 0, 0], WEBHOOK_DISABLE_AFTER_FAILURES=3)
    client = app.test_client()
    creator = register(client, role="creator")
    auth = bearer(creator["access_token"])
    endpoint = add_endpoint(client, creator, receiver, "payout.paid")
    receiver.answers = [500] * 10
    client.post(f"/api/v1/webhooks/{endpoint['id']}/test", headers=auth)
    run_jobs(app)
    [log] = deliveries(client, creator, endpoint)
    assert log["status"] == "failed" and log["attempts"] == 3 and receiver.events == {}
    assert client.get(f"/api/v1/webhooks/{endpoint['id']}", headers=auth).json["enabled"] is False
    redo = f"/api/v1/webhooks/{endpoint['id']}/deliveries/{log['id']}/redeliver"
    assert client.post(redo, headers=auth).status_code == 409  # switched off: switch it on first

    receiver.answers = []
    assert client.patch(f"/api/v1/webhooks/{endpoint['id']}", json={"enabled": True}, headers=auth).status_code == 200
    assert client.post(redo, headers=auth).status_code == 202
    run_jobs(app)
    [log] = deliveries(client, creator, endpoint)
    assert log["status"] == "succeeded" and log["attempts"] == 4 and len(receiver.events) == 1


def test_after_rotation_both_secrets_verify_for_a_while(app, client, receiver):
    creator = register(client, role="creator")
    endpoint = add_endpoint(client, creator, receiver, "payout.paid")
    old = endpoint["secret"]
    rotated = client.post(f"/api/v1/webhooks/{endpoint['id']}/rotate-secret", headers=bearer(creator["access_token"]))
    assert rotated.status_code == 200 and rotated.json["secret"] not in (old, None)
    receiver.secret = rotated.json["secret"]
    client.post(f"/api/v1/webhooks/{endpoint['id']}/test", headers=bearer(creator["access_token"]))
    run_jobs(app)
    assert len(receiver.events) == 1 and receiver.rejected == []
    # A receiver that still holds the old secret accepts the same delivery.
    [(body, headers)] = receiver.raw
    assert Webhook(old).verify(body, headers)["type"] == "webhook.test"
    assert len(headers["Webhook-Signature"].split(" ")) == 2


def test_delivery_to_a_private_address_is_refused_without_a_request(app_factory, receiver):
    app = app_factory(WEBHOOK_RETRY_SCHEDULE=[0, 0])
    client = app.test_client()
    creator = register(client, role="creator")
    endpoint = add_endpoint(client, creator, receiver, "payout.paid")
    app.config["WEBHOOK_ALLOW_PRIVATE_URLS"] = False  # as in production: the URL now resolves somewhere private
    client.post(f"/api/v1/webhooks/{endpoint['id']}/test", headers=bearer(creator["access_token"]))
    run_jobs(app)
    [log] = deliveries(client, creator, endpoint)
    assert log["status"] == "failed" and log["attempts"] == 1 and log["error"].startswith("refused")
    assert sum(receiver.deliveries.values()) == 0


def test_a_host_that_rebinds_to_a_private_address_gets_no_request(app_factory, receiver, monkeypatch):
    app = app_factory(WEBHOOK_RETRY_SCHEDULE=[0, 0])
    client = app.test_client()
    creator = register(client, role="creator")
    port = urlsplit(receiver.url).port
    endpoint = add_endpoint(client, creator, receiver, "payout.paid", url=f"http://hooks.rebind.example:{port}/")
    app.config["WEBHOOK_ALLOW_PRIVATE_URLS"] = False
    # A DNS server that answers a public address to the check, then loopback to the connection.
    answers = iter(["93.184.215.14"])
    resolve = socket.getaddrinfo

    def rebinding(host, *args, **kwargs):
        if host == "hooks.rebind.example":
            return resolve(next(answers, "127.0.0.1"), *args, **kwargs)
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    client.post(f"/api/v1/webhooks/{endpoint['id']}/test", headers=bearer(creator["access_token"]))
    run_jobs(app)
    [log] = deliveries(client, creator, endpoint)
    assert log["status"] == "failed" and "non-public" in log["error"], log
    assert sum(receiver.deliveries.values()) == 0 and receiver.raw == []


def test_events_and_their_log_are_forgotten_after_the_retention(app, client, receiver):
    creator = register(client, role="creator")
    auth = bearer(creator["access_token"])
    endpoint = add_endpoint(client, creator, receiver, "payout.paid")
    client.post(f"/api/v1/webhooks/{endpoint['id']}/test", headers=auth)
    run_jobs(app)
    receiver.answers = [500] * 10  # the second one stays pending, retrying
    app.config["WEBHOOK_RETRY_SCHEDULE"] = [3600]
    client.post(f"/api/v1/webhooks/{endpoint['id']}/test", headers=auth)
    run_jobs(app)
    pending, done = deliveries(client, creator, endpoint)
    assert (pending["status"], done["status"]) == ("pending", "succeeded")
    assert prune_now(app) == 0  # nothing is old yet
    with app.app_context():  # a month and a day ago: past the 30 days' retention
        aged = utcnow() - timedelta(days=31)
        db.session.execute(update(Event).values(created_at=aged))
        db.session.execute(update(Delivery).values(created_at=aged))
        db.session.commit()
    assert prune_now(app) == 1
    [left] = deliveries(client, creator, endpoint)
    assert left["id"] == pending["id"] and left["status"] == "pending"


def prune_now(app) -> int:
    with app.app_context():
        job = queue("low").enqueue(prune)
    run_jobs(app)
    return job.return_value()
