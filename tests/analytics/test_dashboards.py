"""Who may read which dashboard, what bad queries get, and the retention curve from billed time."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import event

from streampay.extensions import db
from tests.analytics.conftest import fold_now, serve
from tests.conftest import assert_pool_gives_transactions
from tests.stellar.conftest import XLM

DAY = {"from": "2027-01-31", "to": "2027-01-31"}


@pytest.fixture
def people(platform):
    creator, other = platform.creator(), platform.creator()
    item = platform.item(creator, "0.0010000", "Film")  # an hour long
    return {"creator": creator, "other": other, "item": item, "viewer": platform.viewer(5 * XLM)}


def test_the_retention_curve_counts_billed_time_not_the_players_position(app, platform, people, clock):
    platform.scan_deposits()
    viewer, item = people["viewer"], people["item"]
    with serve(app) as url:
        for seconds in (360, 900, 1800):  # 10 %, 25 % and 50 % of the hour
            platform.watch(url, viewer, item, seconds, beat=10)
    fold_now(app)
    body = platform.get(people["creator"], f"/analytics/content/{item['id']}", **DAY).json
    retention = body["retention"]
    assert retention["sessions"] == 3 and retention["duration_ms"] == 3_600_000
    curve = {p["percent"]: p["sessions"] for p in retention["curve"]}
    assert [curve[k] for k in (0, 10, 15, 25, 30, 50, 55, 100)] == [3, 3, 2, 2, 1, 1, 0, 0]
    assert [p["share"] for p in retention["curve"]][:3] == [1.0, 1.0, 1.0]
    assert body["totals"]["watch_seconds"] == 3060 and body["totals"]["sessions"] == 3
    assert body["totals"]["unique_viewers"] == 1 and body["totals"]["gross"] == "3.0600000"
    mine = platform.get(people["creator"], "/analytics/creator", **DAY).json
    assert [t["content_id"] for t in mine["top_content"]["by_watch_time"]] == [item["id"]]
    assert mine["top_content"]["by_earnings"][0]["net"] == "2.7540000"


def test_who_may_read_what(platform, people):
    creator, other, viewer, item = people["creator"], people["other"], people["viewer"], people["item"]
    admin = platform.admin()
    assert platform.get(viewer, "/analytics/creator").status_code == 403
    assert platform.get(creator, "/analytics/platform").status_code == 403
    assert platform.get(other, f"/analytics/content/{item['id']}").status_code == 404
    assert platform.get(other, "/analytics/creator", creator_id=creator["user"]["id"]).status_code == 403
    assert platform.get(creator, "/analytics/creator", creator_id=creator["user"]["id"]).status_code == 200
    assert platform.get(admin, "/analytics/creator").status_code == 422  # whose?
    reply = platform.get(admin, "/analytics/creator", creator_id=creator["user"]["id"], **DAY)
    assert reply.status_code == 200 and reply.json["creator_id"] == creator["user"]["id"]
    assert platform.get(admin, f"/analytics/content/{item['id']}").status_code == 200
    assert platform.get(admin, "/analytics/platform").status_code == 200
    assert platform.client.get("/api/v1/analytics/platform").status_code == 401


def test_a_dashboard_asked_with_no_token_is_refused_without_a_database_connection(platform):
    with platform.app.app_context():
        engine = db.engine
    checkouts = []

    def count(*_):
        checkouts.append(1)

    event.listen(engine, "checkout", count)
    try:
        for path in ("/creator", "/platform", f"/content/{uuid.uuid4()}"):
            reply = platform.client.get(f"/api/v1/analytics{path}")
            assert reply.status_code == 401 and reply.json["code"] == 401, reply.json
    finally:
        event.remove(engine, "checkout", count)
    assert checkouts == []


@pytest.mark.parametrize(
    "query",
    [
        {"tz": "Mars/Olympus"},
        {"tz": "../../etc/passwd"},
        {"from": "2027-02-01", "to": "2027-01-31"},
        {"from": "2020-01-01", "to": "2027-01-31"},
        {"from": "0717-04-01"},
        {"to": "0001-01-01"},  # its default `from`, 29 days before, is before the first day a date holds
        {"to": "9999-12-31", "granularity": "month"},
        {"from": "9999-12-01", "to": "9999-12-31"},
        {"granularity": "hour"},
        {"from": "yesterday"},
        {"top": "0"},
    ],
)
@pytest.mark.parametrize("path", ["/analytics/creator", "/analytics/content/{item}", "/analytics/platform"])
def test_bad_queries_are_422_in_the_one_error_shape(platform, people, query, path):
    who = platform.admin() if path == "/analytics/platform" else people["creator"]
    reply = platform.get(who, path.format(item=people["item"]["id"]), **query)
    assert reply.status_code == 422, reply.json
    assert set(reply.json) >= {"code", "status", "message", "errors"} and reply.json["code"] == 422


def test_a_dashboard_read_hands_its_connection_back_with_transactions_on(app, platform, people):
    assert platform.get(people["creator"], "/analytics/creator", **DAY).status_code == 200
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("reads run without a transaction on PostgreSQL only")
    assert_pool_gives_transactions(app)


def test_a_default_period_is_the_last_thirty_local_days(platform, people):
    body = platform.get(people["creator"], "/analytics/creator", tz="Pacific/Chatham").json
    assert len(body["series"]) == 30 and body["period"]["tz"] == "Pacific/Chatham"
    assert body["series"][0]["start"].endswith(("+13:45", "+12:45"))
    weekly = platform.get(people["creator"], "/analytics/creator", granularity="week", **DAY).json
    assert [p["period"] for p in weekly["series"]] == ["2027-01-31"]  # a week clipped to the period


def test_total_watch_seconds_are_the_whole_seconds_of_the_total_not_a_sum_of_each_days(app, platform, people, clock):
    platform.scan_deposits()
    with serve(app) as url:
        platform.watch(url, people["viewer"], people["item"], 30.5)  # from 14:58 UTC: Tokyo's 31 January
        clock.advance(120)  # past 15:00 UTC, Tokyo's midnight
        platform.watch(url, people["viewer"], people["item"], 30.5)  # Tokyo's 1 February
    fold_now(app)
    two_days = {"from": "2027-01-31", "to": "2027-02-01", "tz": "Asia/Tokyo"}
    for path in ("/analytics/creator", f"/analytics/content/{people['item']['id']}"):
        body = platform.get(people["creator"], path, **two_days).json
        assert [(p["watch_ms"], p["watch_seconds"]) for p in body["series"]] == [(30_500, 30), (30_500, 30)]
        assert body["totals"]["watch_ms"] == 61_000 and body["totals"]["watch_seconds"] == 61
