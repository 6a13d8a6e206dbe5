"""/metrics: behind its token, in Prometheus's format, counters that move with heartbeats and payouts,
and, under gunicorn's several workers, one sum of all of them."""

from __future__ import annotations

import json
import os
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.analytics.conftest import fold_now, serve
from tests.stellar.conftest import XLM
from tests.test_procfile import web_dyno

TOKEN = "scrape-token-for-tests"


def scrape(client) -> dict[tuple, float]:
    reply = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert reply.status_code == 200 and reply.mimetype == "text/plain"
    return samples(reply.get_data(as_text=True))


def samples(text: str) -> dict[tuple, float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict, name: str, **labels) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def app(app):
    app.config["METRICS_TOKEN"] = TOKEN
    return app


def test_only_the_token_reads_metrics_and_they_are_not_in_the_api_document(app, platform):
    client = platform.client
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    app.config["METRICS_TOKEN"] = None
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404
    assert "/metrics" not in client.get("/api/openapi.json").json["paths"]


def test_heartbeat_session_charge_and_payout_counters_move(app, platform):
    before = scrape(platform.client)
    creator = platform.creator(payout_address=True)
    item = platform.item(creator, "0.0100000", "Film")
    viewer = platform.viewer(10 * XLM)
    platform.scan_deposits()
    with serve(app) as url:
        platform.watch(url, viewer, item, 125)  # 24 heartbeats, two checkpoints and the stop
    fold_now(app)
    run = platform.runner.invoke(args=["payouts", "run"])
    assert json.loads(run.output)["paid"] == 1
    after = scrape(platform.client)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("streampay_heartbeat_duration_seconds_count") == 24
    assert moved("streampay_sessions_started_total") == 1
    assert moved("streampay_sessions_ended_total", reason="stopped") == 1
    assert moved("streampay_checkpoints_total") == 3
    assert moved("streampay_charged_stroops_total") == 12_500_000
    assert value(after, "streampay_payouts_total", status="paid") == 1
    assert value(after, "streampay_deposits_total", status="credited") == 1
    assert value(after, "streampay_deposited_stroops_total") == 10 * XLM
    assert value(after, "streampay_payout_envelopes_submitted_total") >= 1
    assert value(after, "streampay_rq_queue_depth", queue="low") == 0
    assert value(after, "streampay_redis_up") == 1 and value(after, "streampay_database_up") == 1
    assert value(after, "streampay_websockets_open") == 0
    route = {"method": "GET", "route": "/api/v1/wallet", "status": "200"}
    assert moved("streampay_http_requests_total", **route) >= 1


@pytest.mark.skipif(
    not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")),
    reason="the dyno shares state only through a real PostgreSQL and Redis",
)
def test_the_web_dynos_workers_add_up(tmp_path):
    with web_dyno(
        WEB_CONCURRENCY="2", WEB_CONNECTIONS="50", METRICS_TOKEN=TOKEN, PROMETHEUS_MULTIPROC_DIR=str(tmp_path)
    ) as (port, _):
        for _ in range(40):  # new connections: gunicorn's workers take them in turn
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).read()  # noqa: S310
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        # Whichever worker answers a scrape, it counts every worker's requests.
        for _ in range(4):
            found = samples(urllib.request.urlopen(request, timeout=5).read().decode())  # noqa: S310
            assert value(found, "streampay_http_requests_total", method="GET", route="/healthz", status="200") == 40
