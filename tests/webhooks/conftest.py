from __future__ import annotations

import pytest

from tests.conftest import bearer
from tests.content.conftest import run_jobs  # noqa: F401 (re-exported for the webhook tests)
from tests.webhooks.receiver import Receiver

# Retries at once, so a test sees a whole schedule in one burst of the worker.
FAST = {"WEBHOOK_RETRY_SCHEDULE": [0, 0, 0], "RATELIMIT_ENABLED": False}


@pytest.fixture
def app(app_factory):
    return app_factory(**FAST)


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


def add_endpoint(client, who: dict, receiver: Receiver, *types: str, **extra) -> dict:
    reply = client.post(
        "/api/v1/webhooks",
        json={"url": receiver.url, "event_types": list(types), **extra},
        headers=bearer(who["access_token"]),
    )
    assert reply.status_code == 201, reply.json
    receiver.secret = reply.json["secret"]
    return reply.json


def deliveries(client, who: dict, endpoint: dict) -> list[dict]:
    reply = client.get(f"/api/v1/webhooks/{endpoint['id']}/deliveries", headers=bearer(who["access_token"]))
    assert reply.status_code == 200, reply.json
    return reply.json
