"""Billing through a Redis that forgets its scripts, drops its clients or stops answering.

SCRIPT FLUSH, CLIENT KILL and CLIENT PAUSE reach every client of a server, so on a real Redis these tests run on a
redis-server of their own (on a free port), never on REDIS_URL's, which other processes (another test process,
other work on the machine) are using.
"""

from __future__ import annotations

import os
import time

import pytest

from streampay.extensions import redis_client
from streampay.sandbox.faults import RedisServer
from tests.conftest import register
from tests.content.conftest import ready_item
from tests.streaming.conftest import Player, beat_concurrently, serve, streaming_app, stroops
from tests.streaming.test_billing import wallet

REAL_REDIS = bool(os.environ.get("REDIS_URL"))


@pytest.fixture(scope="module")
def own_redis():
    """Up before each test's app and after its clean-up (which flushes it)."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def app(app_factory, media_root, clock, request):
    """The streaming tests' app, on the module's own redis-server when the tests run on a real Redis."""
    own = {"REDIS_URL": request.getfixturevalue("own_redis").url()} if REAL_REDIS else {}
    return streaming_app(app_factory, media_root, clock, **own)


def test_heartbeats_bill_exactly_through_a_redis_that_forgot_its_scripts_and_dropped_its_clients(
    app, client, runner, players, movie, funded_viewer, clock
):
    viewer = funded_viewer("10")
    player = players(viewer["access_token"])
    session_id = player.call("startStream", content_id=movie["id"])["data"]["session_id"]
    with app.app_context():
        redis = redis_client()
    faults = [redis.script_flush]
    if REAL_REDIS:  # the in-process Redis has no clients to drop
        faults.append(lambda: redis.execute_command("CLIENT", "KILL", "TYPE", "normal"))
    for fault in faults:
        clock.advance(5)
        assert player.call("heartbeat", session_id=session_id)["event"] == "heartbeat"
        fault()
    clock.advance(5)
    beat = player.call("heartbeat", session_id=session_id)
    seconds = 5 * (len(faults) + 1)
    assert beat["event"] == "heartbeat" and beat["data"]["billed_seconds"] == seconds
    stopped = player.call("stopStream", session_id=session_id)
    assert stopped["data"] == {"success": True, "duration": seconds, "charged": f"0.{seconds:02d}00000"}
    assert wallet(client, viewer)["balance"] == f"9.{100 - seconds:02d}00000"
    assert runner.invoke(args=["ledger", "check"]).exit_code == 0


@pytest.mark.skipif(not REAL_REDIS, reason="the in-process Redis cannot be paused")
def test_a_redis_that_stops_answering_fails_heartbeats_cleanly_then_they_bill_again(
    app_factory, own_redis, media_root, media_files, clock
):
    # The app of this test alone: a meter call waits at most a second for Redis.
    settings = {"METER_TIMEOUT_MS": 1000, "HEARTBEAT_TIMEOUT_SECONDS": 15, "RATELIMIT_ENABLED": False}
    app = app_factory(MEDIA_ROOT=media_root, REDIS_URL=own_redis.url(), **settings)
    app.extensions["streampay.clock"] = clock
    client, runner = app.test_client(), app.test_cli_runner()
    creator = register(client, role="creator")
    movie = ready_item(app, client, creator, media_files["feature"], price_per_second="0.0100000")
    with serve(app) as url:
        sessions = {}
        for credit in range(1, 5):
            viewer = register(client)
            runner.invoke(args=["wallet", "credit", viewer["user"]["email"], str(credit), "--reason", "welcome"])
            player = Player(url, viewer["access_token"])
            sessions[credit] = (player, player.call("startStream", content_id=movie["id"])["data"]["session_id"])
        clock.advance(5)
        with app.app_context():
            redis_client().execute_command("CLIENT", "PAUSE", 3000, "ALL")  # longer than a call and its one retry
        for _credit, reply in beat_concurrently(sessions, beats=1):
            assert reply["event"] == "error" and reply["data"]["code"] == "unavailable", reply
        time.sleep(3.2)  # Redis answers again
        clock.advance(5)
        for credit, reply in beat_concurrently(sessions, beats=3):
            assert reply["data"]["billed_seconds"] == 10, reply
            assert stroops(reply["data"]["balance"]) == credit * 10_000_000 - 1_000_000, (credit, reply)
        for player, session_id in sessions.values():
            assert player.call("stopStream", session_id=session_id)["data"]["charged"] == "0.1000000"
            player.close()
    assert runner.invoke(args=["ledger", "check"]).exit_code == 0
