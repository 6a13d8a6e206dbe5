"""Pushes reach the player even when they are published before its socket watches the session, and only the
players of their own deployment."""

from __future__ import annotations

import shutil

import pytest

from streampay import close
from streampay.extensions import redis_client
from streampay.sandbox.faults import RedisServer
from streampay.streaming import meter
from tests.conftest import make_app


def test_balance_low_at_start_reaches_the_player(players, movie, funded_viewer):
    viewer = funded_viewer("0.2")  # 20 s of runway: under the 30 s warning from the first second
    player = players(viewer["access_token"])
    session_id = player.call("startStream", content_id=movie["id"])["data"]["session_id"]
    low = player.wait_push("balanceLow", timeout=5)
    assert low["data"]["session_id"] == session_id and low["data"]["runway_seconds"] == 20
    assert player.call("stopStream", session_id=session_id)["event"] == "stopStream"
    assert player.wait_push("streamEnded")["data"] == {"session_id": session_id, "reason": "stopped"}


def test_a_second_socket_gets_its_own_start_warning(players, movie, funded_viewer):
    first, second = funded_viewer("0.2"), funded_viewer("0.25")
    for viewer, runway in ((first, 20), (second, 25)):
        player = players(viewer["access_token"])
        session_id = player.call("startStream", content_id=movie["id"])["data"]["session_id"]
        low = player.wait_push("balanceLow", timeout=5)
        assert low["data"] == {**low["data"], "session_id": session_id, "runway_seconds": runway}


@pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server: two databases of one server")
def test_apps_on_two_databases_of_one_redis_hear_only_their_own_pushes(migrated):
    with RedisServer() as server:
        apps = [make_app(migrated, REDIS_URL=server.url(db)) for db in (1, 2)]
        listeners = []
        for app in apps:
            with app.app_context():
                listener = redis_client().pubsub()
                listener.subscribe(meter.push_channel())
                assert listener.get_message(timeout=5)["type"] == "subscribe"
                listeners.append(listener)
        with apps[0].app_context():
            meter.publish("for the first")
        assert listeners[0].get_message(timeout=5)["data"] == b"for the first"
        assert listeners[1].get_message(timeout=0.5) is None
        for listener in listeners:
            listener.close()
        for app in apps:  # no rows written: nothing to empty
            close(app)
