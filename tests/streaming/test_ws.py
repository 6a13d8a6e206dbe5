"""Bad frames, wrong sessions and bad tokens get an `error` event; the socket and server live on."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from flask_jwt_extended import create_access_token

from tests.conftest import assert_pool_gives_transactions, autocommit_of, bearer, register
from tests.content.conftest import upload


def alive(player, movie) -> None:
    """The same socket still answers a good frame."""
    assert player.call("startStream", content_id=movie["id"])["event"] == "startStream"


def test_garbage_frames_get_errors_and_the_socket_lives(players, movie, funded_viewer):
    player = players(funded_viewer()["access_token"])
    for raw in ["not json", "[1, 2]", '{"no_event": 1}', '{"event": 5}', "{}", '"just a string"', "x" * 10_000]:
        reply = player.send_raw(raw)
        assert reply["event"] == "error", raw
        assert reply["data"]["code"] == "bad_request" and reply["data"]["message"]
    reply = player.call("danceParty")
    assert reply["event"] == "error" and "Unknown event" in reply["data"]["message"]
    missing = player.call("startStream")
    assert missing["event"] == "error" and "content_id" in json.dumps(missing["data"]["errors"])
    assert missing["data"]["code"] == "validation_failed"  # as HTTP's 422 for a missing field
    wrong_type = player.call("startStream", content_id="not-a-uuid", max_spend=-3)
    assert wrong_type["event"] == "error"
    bad_cap = player.call("startStream", content_id=movie["id"], max_spend="0.123456789")
    assert bad_cap["event"] == "error"
    alive(player, movie)


def test_a_reply_echoes_event_and_id(players, movie, funded_viewer):
    player = players(funded_viewer()["access_token"])
    player.ws.send(json.dumps({"event": "startStream", "id": "abc-7", "data": {"content_id": movie["id"]}}))
    reply = player.next_reply()
    assert reply["event"] == "startStream" and reply["id"] == "abc-7"


def test_authentication_by_header_or_first_auth_event(players, movie, funded_viewer):
    viewer = funded_viewer()
    anonymous = players()
    refused = anonymous.call("startStream", content_id=movie["id"])
    assert refused["event"] == "error" and refused["data"]["code"] == "unauthorized"
    assert anonymous.call("auth", token="garbage")["data"]["code"] == "unauthorized"
    assert anonymous.call("auth", token=viewer["refresh_token"])["data"]["code"] == "unauthorized"
    authed = anonymous.call("auth", token=viewer["access_token"])
    assert authed["event"] == "auth" and authed["data"]["user_id"] == viewer["user"]["id"]
    alive(anonymous, movie)


def test_a_handshake_reads_its_token_holder_without_a_transaction(app, players, movie, funded_viewer):
    """On PostgreSQL the token check of the upgrade request is one read with no BEGIN and ROLLBACK round trips
    around it; the socket's own work after it runs in transactions as ever."""
    viewer = funded_viewer()
    with autocommit_of(app, "FROM users") as reads:
        alive(players(viewer["access_token"]), movie)
    assert reads and reads[0] is True, reads
    assert_pool_gives_transactions(app)


def test_a_bad_handshake_token_is_refused_before_the_upgrade(client, funded_viewer):
    viewer = funded_viewer()
    upgrade = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    for header in ("Bearer forged.token.value", f"Bearer {viewer['refresh_token']}", "Basic abc", "Bearer"):
        reply = client.get("/api/v1/streaming/ws", headers={**upgrade, "Authorization": header})
        assert reply.status_code == 401 and reply.json["code"] == 401 and reply.json["message"]
        assert reply.headers["WWW-Authenticate"] == "Bearer"


def test_a_revoked_token_cannot_authenticate(client, players, funded_viewer):
    viewer = funded_viewer()
    client.post("/api/v1/auth/logout", headers=bearer(viewer["access_token"]))
    player = players()
    assert player.call("auth", token=viewer["access_token"])["data"]["code"] == "unauthorized"


def test_an_expired_token_mid_stream_gets_an_error_until_renewed(app, players, movie, funded_viewer):
    viewer = funded_viewer()
    with app.app_context():
        short = create_access_token(
            identity=viewer["user"]["id"], expires_delta=timedelta(seconds=3), additional_claims={"fam": "short-lived"}
        )
    expires = time.time() + 3
    player = players(short)  # within its 3 s, also on a busy machine
    session_id = player.call("startStream", content_id=movie["id"])["data"]["session_id"]
    time.sleep(max(0.0, expires - time.time()) + 0.2)
    expired = player.call("heartbeat", session_id=session_id)
    assert expired["event"] == "error" and expired["data"]["code"] == "unauthorized"
    assert "expired" in expired["data"]["message"]
    assert player.call("auth", token=viewer["access_token"])["event"] == "auth"
    assert player.call("heartbeat", session_id=session_id)["event"] == "heartbeat"


def test_another_users_session_is_out_of_reach(client, players, movie, funded_viewer, clock):
    alice, mallory = funded_viewer(), funded_viewer()
    a = players(alice["access_token"])
    session_id = a.call("startStream", content_id=movie["id"])["data"]["session_id"]
    m = players(mallory["access_token"])
    for event in ("heartbeat", "stopStream"):
        reply = m.call(event, session_id=session_id)
        assert reply["event"] == "error" and reply["data"]["code"] == "session_not_active"
    for bogus in ("not-a-uuid", "00000000-0000-0000-0000-000000000000", "", 7):
        assert m.call("heartbeat", session_id=bogus)["event"] == "error"
    assert (
        client.get(f"/api/v1/streaming/sessions/{session_id}", headers=bearer(mallory["access_token"])).status_code
        == 404
    )
    clock.advance(5)
    assert a.call("heartbeat", session_id=session_id)["data"]["billed_seconds"] == 5
    assert a.call("stopStream", session_id=session_id)["data"]["charged"] == "0.0500000"


def test_a_closed_session_refuses_heartbeats_and_stops(players, movie, funded_viewer):
    player = players(funded_viewer()["access_token"])
    session_id = player.call("startStream", content_id=movie["id"])["data"]["session_id"]
    assert player.call("stopStream", session_id=session_id)["data"]["success"] is True
    for event in ("heartbeat", "stopStream"):
        assert player.call(event, session_id=session_id)["data"]["code"] == "session_not_active"


def test_streams_per_viewer_are_limited(app, players, movie, funded_viewer):
    player = players(funded_viewer("100")["access_token"])
    limit = app.config["MAX_SESSIONS_PER_VIEWER"]
    for _ in range(limit):
        assert player.call("startStream", content_id=movie["id"])["event"] == "startStream"
    refused = player.call("startStream", content_id=movie["id"])
    assert refused["event"] == "error" and refused["data"]["code"] == "conflict"


def test_content_that_is_not_ready_or_not_there(client, players, creator, media_files, funded_viewer):
    processing = upload(client, creator, media_files["video"]).json
    player = players(funded_viewer()["access_token"])
    not_ready = player.call("startStream", content_id=processing["id"])
    assert not_ready["event"] == "error" and not_ready["data"]["code"] == "not_found"
    unknown = player.call("startStream", content_id="00000000-0000-0000-0000-000000000000")
    assert unknown["data"]["code"] == "not_found"
    own = players(creator["access_token"]).call("startStream", content_id=processing["id"])
    assert own["event"] == "error" and own["data"]["code"] == "conflict"


def test_a_viewer_with_an_active_session_may_fetch_the_media(client, players, movie, funded_viewer):
    from tests.content.conftest import fetch

    viewer = funded_viewer()
    url = f"/api/v1/content/{movie['id']}/media"
    assert fetch(client, url, headers=bearer(viewer["access_token"])).status_code == 403
    player = players(viewer["access_token"])
    session_id = player.call("startStream", content_id=movie["id"])["data"]["session_id"]
    part = fetch(client, url, headers={**bearer(viewer["access_token"]), "Range": "bytes=0-9"})
    assert part.status_code == 206 and len(part.data) == 10
    player.call("stopStream", session_id=session_id)
    assert fetch(client, url, headers=bearer(viewer["access_token"])).status_code == 403
    other = register(client)
    assert fetch(client, url, headers=bearer(other["access_token"])).status_code == 403


def handshake(url: str, **headers: str) -> tuple[int, dict, dict | None]:
    """A WebSocket upgrade request on a plain HTTP connection: the status, headers and JSON body of a refusal."""
    import http.client
    from urllib.parse import urlsplit

    where = urlsplit(url)
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=10)
    try:
        conn.request("GET", "/api/v1/streaming/ws", headers={**UPGRADE, **headers})
        reply = conn.getresponse()
        body = reply.read() if reply.status != 101 else b""
        return reply.status, dict(reply.getheaders()), json.loads(body) if body else None
    finally:
        conn.close()


UPGRADE = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


def test_with_every_database_connection_busy_a_server_refuses_new_sockets_with_503(app_factory):
    """A new socket would queue for a connection behind the sockets already held: refused at once instead."""
    from streampay.extensions import db
    from tests.streaming.conftest import serve

    pool = {"pool_size": 1, "max_overflow": 0, "pool_timeout": 5}
    app = app_factory(SQLALCHEMY_ENGINE_OPTIONS=pool, RATELIMIT_ENABLED=False)
    with serve(app) as url, app.app_context():
        if db.engine.dialect.name == "sqlite":
            pytest.skip("the app sizes no pool for SQLite")
        with db.engine.connect():  # the process's one connection, in use
            status, headers, body = handshake(url)
            assert status == 503 and headers["Retry-After"] == "5", (status, headers)
            assert body["code"] == 503 and "database connection" in body["message"]
        assert handshake(url)[0] == 101


def test_while_its_heartbeats_wait_for_the_meter_a_server_refuses_new_sockets(
    migrated, movie, funded_viewer, redis_of_our_own
):
    """Redis answers late (stopped for 0.6 s, a server of the test's own): the heartbeat that waited is answered, and
    while it is more than 1 % of the last second or two's metered calls no new socket is taken, so the players already
    held wait no longer; then they are."""
    import os
    import signal
    import threading

    from streampay import close
    from streampay.streaming.ws import STRAINED_ADMIT_GAP
    from tests.conftest import make_app
    from tests.streaming.conftest import Player, serve

    viewer = funded_viewer()
    own = redis_of_our_own
    # The app's tables are the other apps' (emptied with theirs); its Redis is the tests' own.
    app = make_app(migrated, REDIS_URL=own.url(), RATELIMIT_ENABLED=False, WS_ADMIT_MAX_METER_WAIT_MS=100)
    with serve(app) as url:
        player = Player(url, viewer["access_token"])
        try:
            session_id = player.call("startStream", content_id=movie["id"])["data"]["session_id"]
            assert handshake(url)[0] == 101  # nothing waited yet
            os.kill(own.proc.pid, signal.SIGSTOP)
            threading.Timer(0.6, os.kill, (own.proc.pid, signal.SIGCONT)).start()
            began = time.monotonic()
            beat = player.call("heartbeat", session_id=session_id)
            assert beat["event"] == "heartbeat" and time.monotonic() - began >= 0.5, beat
            # A trickle still gets in (a socket every STRAINED_ADMIT_GAP at most); the others are refused.
            began = time.monotonic()
            replies = [handshake(url) for _ in range(8)]
            took = time.monotonic() - began
            refused = [reply for reply in replies if reply[0] != 101]
            assert len(replies) - len(refused) <= 1 + int(took / STRAINED_ADMIT_GAP), (refused, took)
            assert refused, took
            for status, headers, body in refused:
                assert status == 503 and headers["Retry-After"] == "5", (status, headers)
                assert body["code"] == 503 and "wait for their heartbeats" in body["message"], body
            assert player.call("heartbeat", session_id=session_id)["event"] == "heartbeat"  # held: served
            time.sleep(STRAINED_ADMIT_GAP + 0.05)
            assert handshake(url)[0] == 101  # still strained, but the trickle's next turn has come
            time.sleep(2.1)  # the slow call is past the last two seconds
            assert handshake(url)[0] == 101
        finally:
            player.close()
    close(app)


def test_past_its_socket_cap_a_server_refuses_new_sockets_with_503_before_the_upgrade(app_factory, funded_viewer):
    from tests.streaming.conftest import Player, serve

    app = app_factory(WS_MAX_SOCKETS_PER_WORKER=2, RATELIMIT_ENABLED=False)
    viewer = register(app.test_client())
    with serve(app) as url:
        held = [Player(url, viewer["access_token"]), Player(url)]
        status, headers, body = handshake(url)
        # Full until players leave: come back later than after a passing strain (5 s).
        assert status == 503 and headers["Retry-After"] == "30", (status, headers)
        assert body["code"] == 503 and body["message"]
        for player in held:  # the sockets already held answer as before
            reply = player.call("heartbeat", session_id="00000000-0000-0000-0000-000000000000")
            assert reply["event"] == "error" and reply["data"]["code"] in ("session_not_active", "unauthorized")
        held.pop().close()
        deadline = time.monotonic() + 10  # the slot is free once the server has seen the close
        while (status := handshake(url)[0]) == 503 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert status == 101
        for player in held:
            player.close()


def test_every_refusal_says_the_same_with_the_security_headers_and_its_own_ids(app_factory, funded_viewer):
    """The first refusal of a kind goes through Flask, whose hooks add the security headers; the next are written in
    front of Flask with the same headers and body (a refusal costs the held players less). Each has its own
    Retry-After and request id, and each is counted."""
    from prometheus_client import REGISTRY

    from tests.streaming.conftest import Player, serve
    from tests.test_security import assert_secure

    def refused() -> float:
        return REGISTRY.get_sample_value("streampay_websockets_refused_total", {"why": "full"}) or 0.0

    app = app_factory(WS_MAX_SOCKETS_PER_WORKER=1, RATELIMIT_ENABLED=False)
    viewer = funded_viewer()
    with serve(app) as url:
        held = Player(url, viewer["access_token"])
        try:
            before = refused()
            replies = [handshake(url) for _ in range(3)]
            replies.append(handshake(url, **{"X-Request-ID": "trace-42"}))
            for status, headers, body in replies:
                assert status == 503 and headers["Retry-After"] == "30", (status, headers)
                assert body == replies[0][2] and "holds all the players" in body["message"], body
                # (`Server` is the test's server's own, werkzeug's; the web dyno's names no version: test_security)
                assert_secure(type("Reply", (), {"headers": {k: v for k, v in headers.items() if k != "Server"}}))
                assert headers["Content-Type"] == "application/json", headers
            ids = [headers["X-Request-ID"] for _, headers, _ in replies]
            assert len(set(ids)) == 4 and ids[-1] == "trace-42", ids
            assert refused() - before == 4
            assert held.call("heartbeat", session_id="00000000-0000-0000-0000-000000000000")["event"] == "error"
        finally:
            held.close()
        deadline = time.monotonic() + 10  # the slot is given back once the server has seen the close
        while (status := handshake(url)[0]) == 503 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert status == 101
