"""Pushes reach the player even when they are published before its socket watches the session."""

from __future__ import annotations


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
