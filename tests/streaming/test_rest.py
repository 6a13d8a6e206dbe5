"""Sessions and payments as the REST API shows them, and many streams on one wallet."""

from __future__ import annotations

import json
import threading

from tests.conftest import bearer, register
from tests.streaming.conftest import Player


def test_sessions_and_payments_for_viewer_and_creator(client, players, movie, creator, funded_viewer, clock):
    viewer = funded_viewer("10")
    player = players(viewer["access_token"])
    ids = []
    for seconds in (12, 65):
        session_id = player.call("startStream", content_id=movie["id"])["data"]["session_id"]
        for _ in range(seconds // 5):
            clock.advance(5)
            player.call("heartbeat", session_id=session_id)
        clock.advance(seconds % 5)
        player.call("stopStream", session_id=session_id)
        ids.append(session_id)

    listed = client.get("/api/v1/streaming/sessions", headers=bearer(viewer["access_token"]))
    assert listed.status_code == 200 and json.loads(listed.headers["X-Pagination"])["total"] == 2
    by_id = {s["id"]: s for s in listed.json}
    assert by_id[ids[0]]["billed_seconds"] == 12 and by_id[ids[0]]["charged"] == "0.1200000"
    assert by_id[ids[1]]["billed_seconds"] == 65 and by_id[ids[1]]["charged"] == "0.6500000"
    assert all(s["status"] == "ended" and s["held"] == "0.0000000" for s in listed.json)

    paid = client.get("/api/v1/payments", headers=bearer(viewer["access_token"])).json
    assert {p["role"] for p in paid} == {"viewer"}
    assert sum(int(p["amount"].replace(".", "")) for p in paid) == 7_700_000  # 0.77 in stroops
    earned = client.get("/api/v1/payments", headers=bearer(creator["access_token"])).json
    assert {p["role"] for p in earned} == {"creator"}
    assert sum(int(p["amount"].replace(".", "")) for p in earned) == 6_930_000  # 0.77 less 10%
    assert {p["session_id"] for p in earned} == set(ids)

    stranger = register(client)
    assert client.get("/api/v1/streaming/sessions", headers=bearer(stranger["access_token"])).json == []
    assert client.get("/api/v1/payments", headers=bearer(stranger["access_token"])).json == []
    assert (
        client.get(f"/api/v1/streaming/sessions/{ids[0]}", headers=bearer(stranger["access_token"])).status_code == 404
    )
    assert client.get("/api/v1/streaming/sessions/nope", headers=bearer(viewer["access_token"])).status_code == 404


def test_many_concurrent_streams_on_one_wallet_never_overdraw(app_factory, media_root, media_files, clock, runner):
    """Twelve players on one wallet at once: holds never exceed the balance, and the books balance."""
    from tests.content.conftest import ready_item
    from tests.streaming.conftest import serve

    app = app_factory(
        MEDIA_ROOT=media_root, MAX_SESSIONS_PER_VIEWER=50, STREAM_WINDOW_SECONDS=60, STREAM_MIN_SECONDS=10
    )
    app.extensions["streampay.clock"] = clock
    client, runner = app.test_client(), app.test_cli_runner()
    creator = register(client, role="creator")
    item = ready_item(app, client, creator, media_files["feature"], price_per_second="0.0100000")
    viewer = register(client)
    # 1.5 units: room for two full 60 s windows (0.6 each) and one 30 s partial, nothing more.
    assert runner.invoke(args=["wallet", "credit", viewer["user"]["email"], "1.5", "--reason", "t"]).exit_code == 0
    results: list[dict] = []
    with serve(app) as url:
        barrier = threading.Barrier(12)

        def play() -> None:
            player = Player(url, viewer["access_token"])
            barrier.wait()
            results.append(player.call("startStream", content_id=item["id"]))
            player.close()

        threads = [threading.Thread(target=play) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    started = [r for r in results if r["event"] == "startStream"]
    refused = [r for r in results if r["event"] == "error"]
    assert len(started) == 3 and len(refused) == 9
    assert {r["data"]["code"] for r in refused} == {"insufficient_funds"}
    wallet = client.get("/api/v1/wallet", headers=bearer(viewer["access_token"])).json
    assert wallet["held"] == "1.5000000" and wallet["available"] == "0.0000000"
    check = runner.invoke(args=["ledger", "check"])
    assert check.exit_code == 0, check.output
