"""Signed media URLs: a <video> plays a session's media without headers, and only that, only while it runs."""

from __future__ import annotations

import time

from tests.conftest import bearer, register
from tests.content.conftest import fetch, ready_item
from tests.streaming.conftest import Player, serve


def _signed(client, viewer: dict, session_id: str) -> str:
    reply = client.get(f"/api/v1/streaming/sessions/{session_id}/media-url", headers=bearer(viewer["access_token"]))
    assert reply.status_code == 200, reply.json
    return reply.json["url"]


def test_a_signed_url_plays_the_session_media_with_ranges_and_no_header(client, players, movie, funded_viewer):
    viewer = funded_viewer()
    session_id = players(viewer["access_token"]).call("startStream", content_id=movie["id"])["data"]["session_id"]
    url = _signed(client, viewer, session_id)
    assert url.startswith(f"/api/v1/streaming/sessions/{session_id}/media?token=")

    whole = fetch(client, url)
    assert whole.status_code == 200 and whole.mimetype == "video/mp4"
    assert len(whole.data) == movie["size_bytes"]
    part = fetch(client, url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.data == whole.data[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{movie['size_bytes']}"
    # The header route stays as it was: without a token it refuses, with one it needs the active session.
    assert client.get(f"/api/v1/content/{movie['id']}/media").status_code == 401
    with_header = fetch(client, f"/api/v1/content/{movie['id']}/media", headers=bearer(viewer["access_token"]))
    assert with_header.status_code == 200


def test_a_signed_url_dies_with_its_session(client, players, movie, funded_viewer):
    viewer = funded_viewer()
    player = players(viewer["access_token"])
    session_id = player.call("startStream", content_id=movie["id"])["data"]["session_id"]
    url = _signed(client, viewer, session_id)
    assert player.call("stopStream", session_id=session_id)["event"] == "stopStream"

    ended = client.get(url)
    assert ended.status_code == 403 and ended.json["message"].startswith("This session has ended")
    again = client.get(f"/api/v1/streaming/sessions/{session_id}/media-url", headers=bearer(viewer["access_token"]))
    assert again.status_code == 403


def test_a_signed_url_reaches_nothing_else(client, players, movie, funded_viewer):
    alice, bob = funded_viewer(), funded_viewer()
    alice_session = players(alice["access_token"]).call("startStream", content_id=movie["id"])["data"]["session_id"]
    bob_session = players(bob["access_token"]).call("startStream", content_id=movie["id"])["data"]["session_id"]
    alice_url = _signed(client, alice, alice_session)
    token = alice_url.split("token=", 1)[1]

    # Another viewer cannot have a URL for Alice's session, nor use Alice's token on their own session.
    foreign = client.get(f"/api/v1/streaming/sessions/{alice_session}/media-url", headers=bearer(bob["access_token"]))
    assert foreign.status_code == 404
    assert client.get(f"/api/v1/streaming/sessions/{bob_session}/media?token={token}").status_code == 403
    # A tampered or missing token, or none at all.
    assert client.get(alice_url[:-2] + ("AA" if not alice_url.endswith("AA") else "BB")).status_code == 403
    missing = client.get(f"/api/v1/streaming/sessions/{alice_session}/media")
    assert missing.status_code == 422 and missing.json["code"] == 422


def test_a_signed_url_is_short_lived(app_factory, media_root, media_files):
    app = app_factory(MEDIA_ROOT=media_root, MEDIA_URL_TTL=1, RATELIMIT_ENABLED=False)
    client, runner = app.test_client(), app.test_cli_runner()
    creator, viewer = register(client, role="creator"), register(client)
    assert runner.invoke(args=["wallet", "credit", viewer["user"]["email"], "5", "--reason", "x"]).exit_code == 0
    movie = ready_item(app, client, creator, media_files["video"], price_per_second="0.0100000")
    with serve(app) as url:
        player = Player(url, viewer["access_token"])
        session_id = player.call("startStream", content_id=movie["id"])["data"]["session_id"]
        signed = _signed(client, viewer, session_id)
        assert fetch(client, signed).status_code == 200
        time.sleep(2.1)  # itsdangerous counts whole seconds: older than 1 s means 2 s on the clock
        expired = client.get(signed)
        player.close()
    assert expired.status_code == 403 and "expired" in expired.json["message"]
