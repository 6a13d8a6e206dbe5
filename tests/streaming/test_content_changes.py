"""The rules hold through races and changes of content: a viewer's stream limit under a burst of starts,
content that leaves play mid-stream, and media that ends."""

from __future__ import annotations

import os
import threading

from tests.conftest import bearer
from tests.content.conftest import ready_item
from tests.streaming.conftest import Player, run_jobs, stroops


def session(client, viewer, session_id: str) -> dict:
    return client.get(f"/api/v1/streaming/sessions/{session_id}", headers=bearer(viewer["access_token"])).json


def burst_of_starts(url: str, token: str, content_id: str, n: int = 12) -> list[dict]:
    """`n` sockets of one viewer each send startStream at the same moment; every reply."""
    sockets = [Player(url, token) for _ in range(n)]
    barrier, replies = threading.Barrier(n), []

    def start(player: Player) -> None:
        barrier.wait()
        replies.append(player.call("startStream", content_id=content_id))

    threads = [threading.Thread(target=start, args=(p,)) for p in sockets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for p in sockets:
        p.close()
    assert len(replies) == n, replies
    return replies


def test_a_burst_of_starts_keeps_the_limit_of_streams(app, client, runner, server, movie, funded_viewer):
    viewer = funded_viewer("100")
    replies = burst_of_starts(server, viewer["access_token"], movie["id"])
    started = [r for r in replies if r["event"] == "startStream"]
    refused = [r for r in replies if r["event"] == "error"]
    assert len(started) == app.config["MAX_SESSIONS_PER_VIEWER"], replies
    assert {r["data"]["code"] for r in refused} == {"conflict"}
    listed = client.get("/api/v1/streaming/sessions", headers=bearer(viewer["access_token"])).json
    assert sum(s["status"] == "active" for s in listed) == app.config["MAX_SESSIONS_PER_VIEWER"]
    held = client.get("/api/v1/wallet", headers=bearer(viewer["access_token"])).json["held"]
    assert stroops(held) == app.config["MAX_SESSIONS_PER_VIEWER"] * 60 * 100_000  # one window each, no more
    assert runner.invoke(args=["ledger", "check"]).exit_code == 0


def test_deleting_content_ends_its_streams_billed_to_that_moment(
    client, runner, players, movie, creator, funded_viewer, clock
):
    watching, silent = funded_viewer(), funded_viewer()
    a, b = players(watching["access_token"]), players(silent["access_token"])
    first = a.call("startStream", content_id=movie["id"])["data"]["session_id"]
    second = b.call("startStream", content_id=movie["id"])["data"]["session_id"]
    clock.advance(5)
    a.call("heartbeat", session_id=first)
    b.call("heartbeat", session_id=second)
    for _ in range(2):  # b falls silent for more than the 15 s timeout; a beats on
        clock.advance(10)
        a.call("heartbeat", session_id=first)
    clock.advance(3)
    assert client.delete(f"/api/v1/content/{movie['id']}", headers=bearer(creator["access_token"])).status_code == 204

    for player, sid in ((a, first), (b, second)):
        assert player.wait_push("streamEnded")["data"] == {"session_id": sid, "reason": "content_unavailable"}
    assert session(client, watching, first)["billed_ms"] == 28_000  # to the moment of the delete
    assert session(client, silent, second)["billed_ms"] == 5_000  # to its last proof of play
    assert a.call("heartbeat", session_id=first)["data"]["code"] == "session_not_active"
    assert a.call("startStream", content_id=movie["id"])["data"]["code"] == "not_found"
    wallet = client.get("/api/v1/wallet", headers=bearer(watching["access_token"])).json
    assert wallet["balance"] == "9.7200000" and wallet["held"] == "0.0000000"
    assert runner.invoke(args=["ledger", "check"]).exit_code == 0


def test_unpublishing_content_ends_its_streams(client, runner, players, movie, creator, funded_viewer, clock):
    viewer = funded_viewer()
    player = players(viewer["access_token"])
    sid = player.call("startStream", content_id=movie["id"])["data"]["session_id"]
    clock.advance(4)
    edit = client.patch(
        f"/api/v1/content/{movie['id']}", json={"is_published": False}, headers=bearer(creator["access_token"])
    )
    assert edit.status_code == 200, edit.json
    assert player.wait_push("streamEnded")["data"] == {"session_id": sid, "reason": "content_unavailable"}
    assert session(client, viewer, sid)["charged"] == "0.0400000"
    assert player.call("startStream", content_id=movie["id"])["data"]["code"] == "not_found"
    # Other edits leave streams alone.
    client.patch(f"/api/v1/content/{movie['id']}", json={"is_published": True}, headers=bearer(creator["access_token"]))
    again = player.call("startStream", content_id=movie["id"])["data"]["session_id"]
    client.patch(f"/api/v1/content/{movie['id']}", json={"title": "New"}, headers=bearer(creator["access_token"]))
    clock.advance(2)
    assert player.call("heartbeat", session_id=again)["data"]["billed_seconds"] == 2
    assert runner.invoke(args=["ledger", "check"]).exit_code == 0


def test_a_reprocess_that_fails_the_content_ends_its_streams(
    app, client, runner, players, movie, funded_viewer, clock, media_root
):
    viewer = funded_viewer()
    player = players(viewer["access_token"])
    sid = player.call("startStream", content_id=movie["id"])["data"]["session_id"]
    clock.advance(6)
    # The stored file went bad; the operator reprocesses it and the media job rejects it.
    [stored] = os.listdir(os.path.join(media_root, "media"))
    with open(os.path.join(media_root, "media", stored), "wb") as f:
        f.write(b"not media any more " * 100)
    assert runner.invoke(args=["content", "reprocess", movie["id"]]).exit_code == 0
    clock.advance(1)
    assert player.call("heartbeat", session_id=sid)["event"] == "heartbeat"  # still playing while it is checked
    run_jobs(app)
    assert player.wait_push("streamEnded")["data"] == {"session_id": sid, "reason": "content_unavailable"}
    assert session(client, viewer, sid)["billed_ms"] == 7_000
    assert runner.invoke(args=["ledger", "check"]).exit_code == 0


def test_a_session_ends_completed_at_the_end_of_the_media(
    app, client, runner, players, creator, media_files, funded_viewer, clock
):
    clip = ready_item(app, client, creator, media_files["video"], price_per_second="0.0100000")  # a few seconds
    viewer = funded_viewer()
    player = players(viewer["access_token"])
    started = player.call("startStream", content_id=clip["id"])
    sid = started["data"]["session_id"]
    held = client.get("/api/v1/wallet", headers=bearer(viewer["access_token"])).json["held"]
    assert stroops(held) == clip["duration_ms"] * 100  # never more held than the media can bill
    clock.advance(2)
    assert player.call("heartbeat", session_id=sid)["data"]["billed_seconds"] == 2
    clock.advance(10)  # the next beat comes after the end of the media
    last = player.call("heartbeat", session_id=sid)
    assert last["event"] == "heartbeat" and last["data"]["billed_seconds"] == clip["duration_ms"] // 1000
    assert player.wait_push("streamEnded")["data"] == {"session_id": sid, "reason": "completed"}
    ended = session(client, viewer, sid)
    assert ended["billed_ms"] == clip["duration_ms"] and ended["end_reason"] == "completed"
    assert stroops(ended["charged"]) == clip["duration_ms"] * 100
    # Playing it again is a new session.
    assert player.call("startStream", content_id=clip["id"])["event"] == "startStream"
    assert runner.invoke(args=["ledger", "check"]).exit_code == 0
