"""A stream played through the real web dyno (gunicorn's gevent workers), settled to the stroop.

The player's socket lives in the dyno's process; the stop arrives through another process, so
the streamEnded push can only reach the player through Redis pub/sub.
"""

from __future__ import annotations

import os
import re
import time
import urllib.request
import uuid

import pytest
from simple_websocket import ConnectionClosed

from streampay.sandbox.faults import Starved, wait_for
from streampay.streaming import siblings
from tests.conftest import bearer
from tests.streaming.conftest import Player, beat_concurrently, stroops
from tests.test_procfile import web_dyno, web_process

pytestmark = pytest.mark.skipif(
    not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")),
    reason="the dyno and the tests share state only through a real PostgreSQL and Redis",
)


@pytest.fixture
def dyno():
    with web_dyno(WEB_CONCURRENCY="2", WEB_CONNECTIONS="50") as (port, log):
        yield f"ws://127.0.0.1:{port}"
    assert "Traceback" not in log(), log()


def test_a_stream_on_the_web_dyno_settles_to_the_stroop(
    dyno, client, runner, players, movie, creator, funded_viewer, clock
):
    viewer = funded_viewer("10")
    player = Player(dyno, viewer["access_token"])
    try:
        started = player.call("startStream", content_id=movie["id"])
        assert started["event"] == "startStream", started
        session_id = started["data"]["session_id"]
        time.sleep(1.1)
        beat = player.call("heartbeat", session_id=session_id)
        assert beat["event"] == "heartbeat", beat
        assert beat["data"]["billed_seconds"] >= 1

        # The stop comes through this test's own server, on the dyno's clock (the real one).
        clock.now = time.time_ns() // 1_000_000
        stopped = players(viewer["access_token"]).call("stopStream", session_id=session_id)
        assert stopped["event"] == "stopStream", stopped
        pushed = player.wait_push("streamEnded")
        assert pushed["data"] == {"session_id": session_id, "reason": "stopped"}
    finally:
        player.close()

    session = client.get(f"/api/v1/streaming/sessions/{session_id}", headers=bearer(viewer["access_token"])).json
    charged, fee = stroops(session["charged"]), stroops(session["fee"])
    # 0.0100000 per second: the bill is the billed milliseconds at 100,000 stroops a second, the fee 10% of it.
    assert session["billed_ms"] >= 1100 and charged == session["billed_ms"] * 100 and fee == charged // 10
    assert stroops(stopped["data"]["charged"]) == charged
    wallet = client.get("/api/v1/wallet", headers=bearer(viewer["access_token"])).json
    assert stroops(wallet["balance"]) == 10 * 10_000_000 - charged and wallet["held"] == "0.0000000"
    earned = client.get("/api/v1/wallet", headers=bearer(creator["access_token"])).json
    assert stroops(earned["earnings"]) == charged - fee
    check = runner.invoke(args=["ledger", "check"])
    assert check.exit_code == 0, check.output


def test_concurrent_heartbeats_on_the_web_dyno_each_read_their_own_meter(dyno, client, runner, movie, funded_viewer):
    # Greenlets of one gevent worker share its Redis connection: each reply must come off its own viewer's meter.
    # Each viewer holds a different amount, so a crossed reply shows a balance and a charge that do not add up.
    sessions = {}
    try:
        for credit in range(1, 13):
            player = Player(dyno, funded_viewer(str(credit))["access_token"])
            sessions[credit] = (player, player.call("startStream", content_id=movie["id"])["data"]["session_id"])
        for credit, reply in beat_concurrently(sessions, beats=25):
            assert reply["event"] == "heartbeat", reply
            assert stroops(reply["data"]["balance"]) + stroops(reply["data"]["charged"]) == credit * 10_000_000, reply
        for player, session_id in sessions.values():
            assert player.call("stopStream", session_id=session_id)["event"] == "stopStream"
    finally:
        for player, _ in sessions.values():
            player.close()
    assert runner.invoke(args=["ledger", "check"]).exit_code == 0


def test_a_burst_of_starts_across_the_dynos_workers_keeps_the_limit(dyno, app, client, runner, movie, funded_viewer):
    from tests.streaming.test_content_changes import burst_of_starts

    viewer = funded_viewer("100")
    replies = burst_of_starts(dyno, viewer["access_token"], movie["id"])
    assert sum(r["event"] == "startStream" for r in replies) == app.config["MAX_SESSIONS_PER_VIEWER"], replies
    assert {r["data"]["code"] for r in replies if r["event"] == "error"} == {"conflict"}
    assert runner.invoke(args=["ledger", "check"]).exit_code == 0


def test_a_gevent_worker_past_its_cpu_share_refuses_new_sockets_and_serves_its_own(funded_viewer):
    """Past WS_ADMIT_MAX_CPU_PERCENT of the last two seconds on a CPU (or waiting for one), a new socket is refused
    with 503 before the upgrade, with no trickle, and the held one is served. At 0 % any work at all is too much.
    Past WS_REFUSALS_PER_SECOND refusals a second, players are told to come back proportionally later, up to
    WS_RETRY_AFTER_FULL_SECONDS: the refusals would cost the held players their CPU."""
    from tests.streaming.test_ws import handshake

    viewer = funded_viewer()
    limits = {"WS_ADMIT_MAX_CPU_PERCENT": "0", "WS_REFUSALS_PER_SECOND": "5", "WS_RETRY_AFTER_FULL_SECONDS": "30"}
    with web_dyno(WEB_CONCURRENCY="1", WEB_CONNECTIONS="50", **limits) as (port, log):
        url = f"ws://127.0.0.1:{port}"
        held = Player(url, viewer["access_token"])  # the first socket starts the measure: nothing known, so taken
        try:
            time.sleep(0.6)  # a quarter of the window measured
            status, headers, body = handshake(url)
            assert status == 503 and headers["Retry-After"] == "5", (status, headers)  # one refusal: the least
            assert body["code"] == 503 and "all the CPU it gets" in body["message"], body
            reply = held.call("stopStream", session_id=str(uuid.uuid4()))
            assert reply["data"]["code"] == "session_not_active", reply
            # Refusals as fast as this test makes them: past 10 a second (twice the 5 allowed), the wait doubles.
            waits, deadline = [], time.monotonic() + 10
            while time.monotonic() < deadline and (not waits or waits[-1] < 10):
                waits.append(int(handshake(url)[1]["Retry-After"]))
            assert waits[-1] >= 10 and all(5 <= wait <= 30 for wait in waits), waits
        finally:
            held.close()
    assert "Traceback" not in log(), log()


def test_a_full_gevent_worker_refuses_new_sockets_with_503_and_keeps_its_own(funded_viewer):
    from tests.streaming.test_ws import handshake

    viewer = funded_viewer()
    with web_dyno(WEB_CONCURRENCY="1", WEB_CONNECTIONS="50", WS_MAX_SOCKETS_PER_WORKER="3") as (port, log):
        url = f"ws://127.0.0.1:{port}"
        held = [Player(url, viewer["access_token"]) for _ in range(3)]
        try:
            for _ in range(5):
                status, headers, body = handshake(url)
                assert status == 503 and body["code"] == 503 and int(headers["Retry-After"]) > 0, (status, body)
            for player in held:
                assert player.call("stopStream", session_id=str(uuid.uuid4()))["data"]["code"] == "session_not_active"
            assert urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz").status == 200  # noqa: S310
        finally:
            for player in held:
                player.close()
    assert "Traceback" not in log(), log()


def test_a_full_worker_leaves_new_sockets_to_its_sibling_and_a_full_dyno_says_retry_later(migrated):
    """Two workers of two sockets each: once both serve, four sockets opened one after another are all taken (the
    worker at its cap stops accepting while its sibling has room, so no player is refused by one worker while the
    other would take it); with four held, every 503 says WS_RETRY_AFTER_FULL_SECONDS; a socket closed makes room."""
    import http.client

    from tests.streaming.test_ws import UPGRADE

    def upgrade(port: int) -> tuple[int, dict, http.client.HTTPConnection]:
        """An upgrade request; on 101 its connection stays open, holding a socket of the worker that took it."""
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/api/v1/streaming/ws", headers=UPGRADE)
        reply = conn.getresponse()
        if reply.status != 101:
            reply.read()
            conn.close()
        return reply.status, dict(reply.getheaders()), conn

    env = {"WEB_CONCURRENCY": "2", "WEB_CONNECTIONS": "50", "WS_MAX_SOCKETS_PER_WORKER": "2", "LOG_LEVEL": "INFO"}
    with web_dyno(**env) as (port, log):
        assert wait_for(lambda: log().count("Worker ready") >= 2, 60), log()
        time.sleep(2 * siblings.STALE_SECONDS)  # each has stamped its slot since
        held = []
        try:
            for _ in range(4):
                status, headers, conn = upgrade(port)
                assert status == 101, (len(held), status, headers)
                held.append(conn)
            for _ in range(4):
                status, headers, _ = upgrade(port)
                assert status == 503 and headers["Retry-After"] == "30", (status, headers)
            held.pop().close()
            assert wait_for(lambda: (took := upgrade(port))[0] == 101 and not held.append(took[2]), 10)
        finally:
            for conn in held:
                conn.close()
    assert "Traceback" not in log(), log()


def come_back(url: str, token: str, within: float = 20) -> Player:
    """Open a socket as a player does after a 503: again, a little later, until admitted."""
    from tests.streaming.test_ws import handshake

    deadline = time.monotonic() + within
    while handshake(url)[0] != 101:  # (a refused Client would leave its socket open)
        assert time.monotonic() < deadline, "never admitted again"
        time.sleep(0.5)
    return Player(url, token)


def test_a_worker_starved_of_cpu_sheds_its_newest_sockets_and_their_sessions_go_on(movie, funded_viewer):
    """A worker whose loop runs later than WS_SHED_LAG_MS all through a lag window closes its newest sockets with
    1013 (try again later), as many as its lateness says it lacks CPU for, not only WS_SHED_PERCENT (10 %, 1 of 8):
    stopped 1 s of every 1.03, its wake-ups are 0.15-1 s late on average (how late depends on the host), so it
    closes 2-4 of 8 (at most half). The oldest stay open and answering, and a shed player that comes back
    heartbeats the same session on, billed from where it was."""
    viewer = funded_viewer("10")
    env = {"WEB_CONCURRENCY": "1", "WEB_CONNECTIONS": "50", "MAX_SESSIONS_PER_VIEWER": "8"}
    with web_process(**env, WS_SHED_LAG_MS="60", WS_SHED_PERCENT="10") as (port, dyno):
        url = f"ws://127.0.0.1:{port}"
        players = [Player(url, viewer["access_token"]) for _ in range(8)]
        sessions = [p.call("startStream", content_id=movie["id"])["data"]["session_id"] for p in players]
        (worker,) = dyno.children()
        with Starved(worker, run_ms=30, stopped_ms=1000), pytest.raises(ConnectionClosed) as closed:
            players[-1].next_reply(timeout=30)
        assert closed.value.reason == 1013, closed.value
        shed = re.search(r"closing the newest (\d+) of 8 sockets \(1013\)", dyno.log())
        assert shed, dyno.log()
        count = int(shed[1])
        assert 2 <= count <= 4, dyno.log()
        kept = len(players) - count
        for player in players[kept:-1]:
            with pytest.raises(ConnectionClosed):
                player.next_reply(timeout=10)
        try:
            for player, session_id in zip(players[:kept], sessions, strict=False):  # the oldest: still held
                assert player.call("heartbeat", session_id=session_id)["event"] == "heartbeat"
            back = come_back(url, viewer["access_token"])
            beat = back.call("heartbeat", session_id=sessions[-1])
            assert beat["event"] == "heartbeat", beat
            assert beat["data"]["billed_seconds"] >= 1  # the session went on through the shedding
            back.close()
        finally:
            for player in players[:kept]:
                player.close()
    assert "Traceback" not in dyno.log(), dyno.log()
