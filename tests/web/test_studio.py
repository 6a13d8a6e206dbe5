"""The creator studio: upload through the page, watch it become ready, set its price, and see earnings."""

from __future__ import annotations

import json
import time

from playwright.sync_api import expect
from simple_websocket import Client

from tests.web.conftest import IN_A_BROWSER, screenshot, sign_in

pytestmark = IN_A_BROWSER


def watch_for_a_while(site, viewer: dict, content_id: str, seconds: float) -> None:
    """A player of the test's own, on the WebSocket: start, a heartbeat a second, stop."""
    ws = Client.connect(
        site.base.replace("http", "ws") + "/api/v1/streaming/ws",
        headers={"Authorization": f"Bearer {viewer['access_token']}"},
    )

    def call(event: str, **data) -> dict:
        ws.send(json.dumps({"event": event, "id": event, "data": data}))
        while True:
            frame = json.loads(ws.receive(timeout=10))
            if frame.get("id") == event:
                assert frame["event"] == event, frame
                return frame["data"]

    try:
        session_id = call("startStream", content_id=content_id)["session_id"]
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(1)
            call("heartbeat", session_id=session_id)
        call("stopStream", session_id=session_id)
    finally:
        ws.close()


def test_a_creator_uploads_sees_it_ready_sets_the_price_and_sees_earnings(page, site, clips):
    creator = site.register("creator")
    sign_in(page, creator)
    expect(page.get_by_role("heading", name="Creator studio")).to_be_visible()

    form = page.get_by_role("form", name="Upload")
    form.get_by_label("Media file").set_input_files(clips["short"])
    form.get_by_label("Title").fill("Morning sprint")
    form.get_by_label("Description").fill("Three seconds of orange.")
    form.get_by_label("Category").fill("sport")
    form.get_by_label("Price per second").fill("0.0200000")
    form.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-status")).to_have_text("“Morning sprint” is ready.", timeout=30_000)
    expect(page.locator("#upload-progress")).to_have_attribute("value", "100")
    row = page.get_by_role("row").filter(has_text="Morning sprint")
    expect(row).to_contain_text("ready")
    expect(row).to_contain_text("0.0200000")

    # Change the price through the page; the API shows it.
    row.get_by_role("button", name="Edit").click()
    editor = page.get_by_role("form", name="Edit Morning sprint")
    editor.get_by_label("Price per second").fill("0.0100000")
    editor.get_by_role("button", name="Save").click()
    expect(page.get_by_role("row").filter(has_text="Morning sprint")).to_contain_text("0.0100000")
    [item] = site.call("GET", f"/api/v1/content/?creator_id={creator['user']['id']}", creator["access_token"])
    assert item["price_per_second"] == "0.0100000" and item["status"] == "ready"

    # A viewer watches for two seconds; the studio shows the earnings, net of the platform's 10 %.
    viewer = site.register()
    site.credit(viewer["email"], "1")
    watch_for_a_while(site, viewer, item["id"], 2)
    [session] = site.sessions(viewer)
    earned = site.wallet(creator)["earnings"]
    assert earned != "0.0000000"
    site.fold_analytics()
    page.reload()
    expect(page.get_by_text(f"Not yet paid out: {earned}")).to_be_visible()
    earnings = page.get_by_role("img", name="Earnings by day (net of fees)")
    expect(earnings).to_be_visible()
    expect(earnings.locator("desc")).to_contain_text(earned)  # today's bar is what the viewer's session earned
    expect(page.get_by_text("analytics are not served here")).to_have_count(0)
    expect(page.get_by_role("heading", name="Payouts")).to_be_visible()
    expect(page.get_by_text("No payouts yet")).to_be_visible()

    # The creator proves a payout address; the next payout run pays the earnings on the network.
    site.link_payout_address(creator)
    site.run_payouts()
    [payout] = site.call("GET", "/api/v1/payouts", creator["access_token"])
    assert payout["status"] == "paid" and payout["amount"] == earned and payout["tx_hash"]
    page.reload()
    payouts = page.get_by_role("table", name="Payouts")
    expect(payouts).to_contain_text(payout["tx_hash"])
    expect(payouts).to_contain_text(earned)
    page.get_by_role("row").filter(has_text="Morning sprint").get_by_role("button", name="Retention").click()
    retention = page.get_by_role("img", name="Retention: Morning sprint")
    expect(retention).to_be_visible()
    expect(page.locator("#retention")).to_contain_text("1 session in the last 30 days")
    expect(retention.locator("desc")).to_contain_text("0% of the way: 100% still watching")
    screenshot(page, "studio")
