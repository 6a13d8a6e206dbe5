"""CSV exports: what people take to a spreadsheet, streamed, amounts and times as the API writes them."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime

import pytest

from tests.analytics.conftest import fold_now, serve
from tests.stellar.conftest import XLM


def rows_of(reply) -> list[dict]:
    assert reply.status_code == 200, reply.get_data(as_text=True)[:500]
    assert reply.is_streamed and reply.mimetype == "text/csv"
    assert reply.headers["Content-Disposition"].startswith("attachment; filename=")
    return list(csv.DictReader(io.StringIO(reply.get_data(as_text=True))))


@pytest.fixture
def app(app, clock):
    app.config["CSV_PAGE_ROWS"] = 2  # every export crosses pages
    return app


@pytest.fixture
def streamed(app, platform):
    """A creator paid on-chain for two streams of a viewer who deposited on-chain."""
    creator = platform.creator(payout_address=True)
    item = platform.item(creator, "0.0100000", "Film")
    viewer = platform.viewer(20 * XLM)
    platform.scan_deposits()
    with serve(app) as url:
        platform.watch(url, viewer, item, 130)
        platform.watch(url, viewer, item, 75.5)
    fold_now(app)
    run = platform.runner.invoke(args=["payouts", "run"])
    assert json.loads(run.output)["paid"] == 1, run.output
    return creator, viewer, item


def test_payments_as_viewer_and_as_creator(platform, streamed):
    creator, viewer, _ = streamed
    for who, role in ((viewer, "viewer"), (creator, "creator")):
        listed = platform.get(who, "/payments", page_size=100).json
        exported = rows_of(platform.get(who, "/payments", format="csv"))
        assert [r["role"] for r in exported] == [role] * len(listed) and len(listed) >= 4
        assert [(int(r["transaction_id"]), r["amount"], r["session_id"]) for r in exported] == [
            (p["transaction_id"], p["amount"], p["session_id"]) for p in listed
        ]
        assert all(datetime.fromisoformat(r["created_at"]).utcoffset() is not None for r in exported)
    by_header = platform.client.get("/api/v1/payments", headers={**_auth(viewer), "Accept": "text/csv"})
    assert rows_of(by_header) == rows_of(platform.get(viewer, "/payments", format="csv"))


def test_payouts_with_their_transaction_hashes(platform, streamed, horizon):
    creator, _, _ = streamed
    [paid] = rows_of(platform.get(creator, "/payouts", format="csv"))
    [listed] = platform.get(creator, "/payouts").json
    assert paid["tx_hash"] == listed["tx_hash"] and paid["tx_hash"] in horizon.applied
    assert paid["status"] == "paid" and paid["amount"] == listed["amount"] == "1.8495000"


def test_the_wallet_ledger(platform, streamed):
    _, viewer, _ = streamed
    exported = rows_of(platform.get(viewer, "/wallet/ledger", format="csv"))
    listed = platform.get(viewer, "/wallet/ledger", page_size=100).json
    assert [(int(r["id"]), r["kind"], r["amount"]) for r in exported] == [
        (e["id"], e["kind"], e["amount"]) for e in listed
    ]
    assert exported[-1]["kind"] == "deposit" and exported[-1]["amount"] == "20.0000000"


def test_analytics_series(platform, streamed):
    creator, _, item = streamed
    query = {"from": "2027-01-31", "to": "2027-02-01", "tz": "Asia/Kolkata"}
    series = platform.get(creator, "/analytics/creator", **query).json["series"]
    exported = rows_of(platform.get(creator, "/analytics/creator", format="csv", **query))
    assert [(r["period"], r["start"], r["gross"], r["net"]) for r in exported] == [
        (p["period"], p["start"], p["gross"], p["net"]) for p in series
    ]
    assert exported[0]["start"] == "2027-01-31T00:00:00+05:30"
    item_rows = rows_of(platform.get(creator, f"/analytics/content/{item['id']}", format="csv", **query))
    assert sum(int(r["watch_ms"]) for r in item_rows) == 205_500


def _auth(who: dict) -> dict:
    return {"Authorization": f"Bearer {who['access_token']}"}
