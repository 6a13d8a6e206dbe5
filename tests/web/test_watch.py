"""A viewer signs up, is credited by an operator, and watches: billed only while the video plays."""

from __future__ import annotations

import contextlib
import os
import signal
import time

from playwright.sync_api import expect
from simple_websocket import Client

from streampay.content import samples
from streampay.sandbox.faults import Starved
from tests.conftest import PASSWORD, bearer
from tests.test_procfile import wait_for, web_process
from tests.web.conftest import IN_A_BROWSER, screenshot, sign_in, submit

pytestmark = IN_A_BROWSER

STROOPS = 10_000_000


def stroops(amount: str) -> int:
    whole, _, frac = amount.partition(".")
    return int(whole) * STROOPS + int((frac + "0000000")[:7])


def shown(page, element_id: str) -> str:
    return page.locator(f"#{element_id}").inner_text()


def playback(page) -> dict:
    """What the page shows and what its video is doing, for a failing assertion's message."""
    video = page.evaluate(
        "(({ currentTime, paused, ended, readyState }) => ({ currentTime, paused, ended, readyState }))"
        "(document.getElementById('video'))"
    )
    return {"status": shown(page, "stream-status"), "charged": shown(page, "charged"), **video}


def test_a_viewer_pays_for_what_plays_and_nothing_while_paused(page, site, clips):
    creator = site.register("creator")
    item = site.upload(creator, clips["long"], "Harbour at dusk")

    # Sign up through the page, as a newcomer does; an operator credits the wallet with the CLI.
    page.goto("/")
    page.get_by_role("link", name="Sign in").click()
    page.get_by_role("link", name="Create an account").click()
    # The sign-in form has an Email field too: fill only once the sign-up view has taken its place.
    expect(page.get_by_role("heading", name="Create an account")).to_be_visible()
    email = f"viewer-{time.time_ns()}@example.com"
    page.get_by_label("Email").fill(email)
    page.get_by_label("Username").fill(f"viewer{time.time_ns() % 10**9}")
    page.get_by_label("Password").fill(PASSWORD)
    screenshot(page, "sign-up")
    submit(page, "Create account", "**/#/catalogue")
    site.credit(email, "5")
    viewer = {"access_token": page.evaluate("JSON.parse(localStorage['streampay.tokens']).access_token")}

    # The catalogue: search finds the item; the watch page shows its price.
    page.get_by_label("Search").fill("harbour")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url("**search=harbour**")
    page.get_by_role("link", name="Harbour at dusk").wait_for()
    screenshot(page, "catalogue")
    page.get_by_role("link", name="Harbour at dusk").click()
    page.wait_for_url(f"**/#/watch/{item['id']}")
    expect(page.locator("#price")).to_have_text("0.0100000")
    expect(page.locator("#balance")).to_have_text("5.0000000")

    # Play: charged rises with each heartbeat.
    play = page.get_by_role("button", name="Play")
    play.click()
    assert wait_for(lambda: stroops(shown(page, "charged")) > 0, 10), shown(page, "stream-status")
    first = stroops(shown(page, "charged"))
    assert wait_for(lambda: stroops(shown(page, "charged")) > first, 5)
    assert page.evaluate("document.getElementById('video').currentTime") > 0
    screenshot(page, "watch")

    # Pause for longer than the heartbeat timeout: the session stops and nothing more is charged.
    page.get_by_role("button", name="Pause").click()
    assert wait_for(lambda: site.sessions(viewer) and site.sessions(viewer)[0]["status"] == "ended", 5)
    paused_at = site.wallet(viewer)["balance"]
    [first_session] = site.sessions(viewer)
    assert first_session["end_reason"] == "stopped"
    # The page shows what the server settled for the session, to the stroop.
    assert wait_for(lambda: shown(page, "charged") == first_session["charged"], 5), shown(page, "charged")
    charged_at_pause = shown(page, "charged")
    time.sleep(4.5)
    assert site.wallet(viewer)["balance"] == paused_at
    assert shown(page, "charged") == charged_at_pause
    assert shown(page, "balance") == paused_at
    assert "Nothing is charged" in shown(page, "stream-status")

    # Resume where it stood: a new session, and the bill moves again.
    position = page.evaluate("document.getElementById('video').currentTime")
    page.get_by_role("button", name="Play").click()
    assert wait_for(lambda: stroops(shown(page, "charged")) > stroops(charged_at_pause), 10)
    assert page.evaluate("document.getElementById('video').currentTime") >= position

    # To the end of the clip: the session ends and the page shows what the server settled.
    assert wait_for(lambda: all(s["status"] == "ended" for s in site.sessions(viewer)), 20), site.sessions(viewer)
    sessions = site.sessions(viewer)
    assert len(sessions) == 2
    billed = sum(stroops(s["charged"]) for s in sessions)
    assert billed == sum(s["billed_ms"] for s in sessions) * 100  # 0.01 a second is 100 stroops a millisecond
    wallet = site.wallet(viewer)
    assert stroops(wallet["balance"]) == 5 * STROOPS - billed and wallet["held"] == "0.0000000"
    assert wait_for(lambda: stroops(shown(page, "charged")) == billed, 5), (shown(page, "charged"), billed)
    assert wait_for(lambda: shown(page, "balance") == wallet["balance"], 5)
    # Played about 8 seconds in all, paused 4.5: billed for the playing only (plus each start's latency).
    assert 7_000 <= sum(s["billed_ms"] for s in sessions) <= 11_000, sessions


def test_a_clip_played_to_its_end_completes(page, site, clips):
    creator, viewer = site.register("creator"), site.register()
    item = site.upload(creator, clips["short"], "Sprint")
    site.credit(viewer["email"], "1")
    sign_in(page, viewer)
    page.goto(f"/app/#/watch/{item['id']}")
    # By keyboard: the page puts focus on its heading; the next Tab reaches Play, with a visible ring.
    expect(page.get_by_role("heading", name="Sprint")).to_be_focused()
    page.keyboard.press("Tab")
    play = page.get_by_role("button", name="Play")
    expect(play).to_be_focused()
    expect(play).to_have_css("outline-style", "solid")
    page.keyboard.press("Space")
    expect(page.get_by_role("button", name="Pause")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#stream-status")).to_have_attribute("data-reason", "completed", timeout=15_000)
    expect(page.locator("#stream-status")).to_have_text("Finished: you watched to the end.")
    [session] = site.sessions(viewer)
    assert session["end_reason"] == "completed" and session["billed_ms"] == item["duration_ms"]
    assert wait_for(lambda: shown(page, "charged") == session["charged"], 5), (shown(page, "charged"), session)
    assert site.wallet(viewer)["balance"] == shown(page, "balance")


def test_a_low_balance_shows_the_banner_then_ends_the_stream(page, site, clips):
    creator, viewer = site.register("creator"), site.register()
    item = site.upload(creator, clips["runway"], "Runway")
    site.credit(viewer["email"], "0.0400000")  # 4 seconds at 0.01: under the server's 6 s warning from the start
    sign_in(page, viewer)
    page.goto(f"/app/#/watch/{item['id']}")
    expect(page.locator("#balance-low")).to_be_hidden()
    page.get_by_role("button", name="Play").click()
    expect(page.locator("#balance-low")).to_be_visible()
    expect(page.locator("#balance-low")).to_contain_text("Low balance")
    screenshot(page, "watch-low-balance")
    status = page.locator("#stream-status")
    expect(status).to_have_attribute("data-reason", "insufficient_funds", timeout=15_000)
    expect(status).to_contain_text("Your balance ran out")
    [session] = site.sessions(viewer)
    assert session["end_reason"] == "insufficient_funds" and session["charged"] == "0.0400000"
    expect(page.locator("#balance")).to_have_text("0.0000000")
    expect(page.get_by_role("button", name="Play")).to_be_visible()  # the video stopped with the money
    assert site.wallet(viewer)["balance"] == "0.0000000"


def test_hiding_the_tab_pauses_and_stops_the_bill(page, site, clips):
    creator, viewer = site.register("creator"), site.register()
    item = site.upload(creator, clips["runway"], "Hidden")
    site.credit(viewer["email"], "1")
    sign_in(page, viewer)
    page.goto(f"/app/#/watch/{item['id']}")
    page.get_by_role("button", name="Play").click()
    assert wait_for(lambda: stroops(shown(page, "charged")) > 0, 10)
    # What the browser does when the viewer switches tabs.
    page.evaluate("""() => {
        Object.defineProperty(document, "hidden", { value: true, configurable: true });
        document.dispatchEvent(new Event("visibilitychange"));
    }""")
    expect(page.get_by_role("button", name="Play")).to_be_visible()
    assert wait_for(lambda: site.sessions(viewer)[0]["status"] == "ended", 5)
    [session] = site.sessions(viewer)
    assert session["end_reason"] == "stopped"
    expect(page.locator("#charged")).to_have_text(session["charged"])


def test_a_page_refused_by_a_full_server_keeps_trying_and_plays_once_there_is_room(browser, site, clips):
    """A dyno at its cap refuses the page's socket with 503 before the upgrade, which a page cannot read: the page
    says it is trying again, and plays, billed, once a socket is free."""
    with trying_a_full_dyno(browser, site, clips) as (page, viewer, free_the_slot, _):
        assert stroops(shown(page, "charged")) == 0 and site.sessions(viewer) == []
        free_the_slot()
        assert wait_for(lambda: stroops(shown(page, "charged")) > 0, 30), playback(page)
        [session] = site.sessions(viewer)
        assert session["status"] == "active", session


def test_a_page_left_while_it_waits_for_room_opens_no_socket_after(browser, site, clips):
    """The viewer leaves the watch page while its player is still trying a full server: once there is room, no
    socket of that page takes it (a page that retries for a minute must not leave one behind)."""
    with trying_a_full_dyno(browser, site, clips) as (page, viewer, free_the_slot, take_the_slot):
        page.goto("/app/#/catalogue")
        page.get_by_role("heading", name="Catalogue").wait_for()
        free_the_slot()
        time.sleep(20)  # past the page's tries at about 3.5, 7.5 and 15.5 s
        take_the_slot().close()  # 503 if a socket of the page had taken it
        assert site.sessions(viewer) == []


@contextlib.contextmanager
def trying_a_full_dyno(browser, site, clips):
    """A web process capped at one socket, held by another viewer's client; a viewer's page pressed Play on it and
    says it is trying again. Yields the page, the viewer, and how to free the slot and take it again."""
    creator, viewer, other = site.register("creator"), site.register(), site.register()
    item = site.upload(creator, clips["long"], "Harbour at dusk")
    site.credit(viewer["email"], "5")
    with web_process(WEB_CONCURRENCY="1", WEB_CONNECTIONS="50", WS_MAX_SOCKETS_PER_WORKER="1", **site.env) as (
        port,
        dyno,
    ):

        def take_the_slot() -> Client:
            return Client.connect(f"ws://127.0.0.1:{port}/api/v1/streaming/ws", headers=bearer(other["access_token"]))

        holder = take_the_slot()
        context = browser.new_context(base_url=f"http://127.0.0.1:{port}")
        page = context.new_page()
        try:
            sign_in(page, viewer)
            page.goto(f"/app/#/watch/{item['id']}")
            page.get_by_role("button", name="Play").click()
            expect(page.locator("#stream-status")).to_contain_text("The stream server is busy; trying again in")
            yield page, viewer, holder.close, take_the_slot
        finally:
            context.close()
    assert "Traceback" not in dyno.log(), dyno.log()


def test_a_socket_shed_by_a_starved_server_comes_back_and_its_session_goes_on(browser, site, tmp_path):
    """A web process given less CPU than its sockets need lets its newest go with 1013 (try again later): the page
    opens a new socket and beats the same session on. One session, billed throughout, stopped on pause."""

    def starve(dyno):
        (worker,) = dyno.children()
        with Starved(worker):
            assert wait_for(lambda: "closing the newest 1 of 1 sockets (1013)" in dyno.log(), 30), dyno.log()

    shedding = {"WS_SHED_LAG_MS": "100", "WS_SHED_PERCENT": "100", "HEARTBEAT_TIMEOUT_SECONDS": "10"}
    goes_on_through(starve, browser, site, tmp_path, shedding)


def test_a_web_worker_killed_mid_stream_leaves_a_page_that_goes_on_with_its_replacement(browser, site, tmp_path):
    """kill -9 of the worker that holds the socket: the page sees the connection drop with no close frame (1006),
    opens a new socket to the worker gunicorn starts in its place, and beats the same session on."""

    def kill(dyno):
        (worker,) = dyno.children()
        os.kill(worker, signal.SIGKILL)
        assert wait_for(lambda: dyno.children() and dyno.children() != [worker], 30), dyno.log()

    goes_on_through(kill, browser, site, tmp_path, {"HEARTBEAT_TIMEOUT_SECONDS": "15"})  # a worker's boot takes seconds


def goes_on_through(fault, browser, site, tmp_path, env: dict) -> None:
    """Play on a web process of one worker, `fault(dyno)` mid-stream: the bill moves on, in the one session, and a
    pause stops it at what the page then shows."""
    creator, viewer = site.register("creator"), site.register()
    # Longer than the test can take: a video that ends while its socket is away is another story.
    clip = samples.make_video(str(tmp_path / "long-haul.mp4"), seconds=90, label="Long haul")
    item = site.upload(creator, clip, "Long haul")
    site.credit(viewer["email"], "5")
    with web_process(WEB_CONCURRENCY="1", WEB_CONNECTIONS="50", **{**site.env, **env}) as (port, dyno):
        context = browser.new_context(base_url=f"http://127.0.0.1:{port}")
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            sign_in(page, viewer)
            page.goto(f"/app/#/watch/{item['id']}")
            page.get_by_role("button", name="Play").click()
            assert wait_for(lambda: stroops(shown(page, "charged")) > 0, 10), playback(page)

            fault(dyno)
            before = stroops(shown(page, "charged"))
            # The page comes back after a random part of a beat's interval, to a worker still catching up (or still
            # booting): on a busy machine that is more than a few seconds.
            assert wait_for(lambda: stroops(shown(page, "charged")) > before, 30), playback(page)
            [session] = site.sessions(viewer)
            assert session["status"] == "active", session

            page.get_by_role("button", name="Pause").click()
            assert wait_for(lambda: site.sessions(viewer)[0]["status"] == "ended", 5), site.sessions(viewer)
            [session] = site.sessions(viewer)
            assert session["end_reason"] == "stopped", session
            assert wait_for(lambda: shown(page, "charged") == session["charged"], 5), (playback(page), session)
        finally:
            context.close()
        assert not errors, errors
    assert "Traceback" not in dyno.log(), dyno.log()
