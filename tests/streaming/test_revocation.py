"""An open WebSocket follows its token: sign-out, deactivation or a role change close it and end its streams."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time

import pytest
from simple_websocket import ConnectionClosed
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage

from tests.conftest import PASSWORD, bearer, register
from tests.streaming.conftest import Player, listening, stroops
from tests.test_procfile import web_dyno

LOGOUT = "/api/v1/auth/logout"


def closed_by_server(player, timeout: float = 5.0) -> list[dict]:
    """Every frame up to the server's close; fails if the socket is still open after `timeout`."""
    frames = list(player.pushes)
    player.pushes.clear()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            raw = player.ws.receive(timeout=max(0.05, deadline - time.monotonic()))
            if raw is None:
                if not player.ws.connected:
                    return frames
                continue
            frames.append(json.loads(raw))
    except ConnectionClosed:
        return frames
    raise AssertionError(f"the socket stayed open; frames: {frames}")


def login(client, email: str) -> dict:
    reply = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert reply.status_code == 200, reply.json
    return reply.json


def session(client, who, session_id: str) -> dict:
    return client.get(f"/api/v1/streaming/sessions/{session_id}", headers=bearer(who["access_token"])).json


def test_signing_out_closes_the_sockets_of_that_sign_in_and_bills_to_the_last_heartbeat(
    client, players, movie, funded_viewer, clock
):
    viewer = funded_viewer("10")
    laptop = login(client, viewer["user"]["email"])
    player, other = players(viewer["access_token"]), players(laptop["access_token"])
    session_id = player.call("startStream", content_id=movie["id"])["data"]["session_id"]
    clock.advance(5)
    assert player.call("heartbeat", session_id=session_id)["data"]["billed_seconds"] == 5
    clock.advance(7)  # watched on, but no heartbeat proves it

    assert client.post(LOGOUT, headers=bearer(viewer["access_token"])).status_code == 200
    frames = closed_by_server(player)
    assert {"event": "streamEnded", "data": {"session_id": session_id, "reason": "revoked"}} in frames
    assert frames[-1]["event"] == "error" and frames[-1]["data"]["code"] == "unauthorized", frames
    assert player.ws.close_reason == 1008

    ended = session(client, laptop, session_id)
    assert ended["status"] == "ended" and ended["end_reason"] == "revoked", ended
    assert ended["billed_ms"] == 5000 and stroops(ended["charged"]) == 5 * 100_000
    # The other sign-in of the same viewer keeps its socket.
    assert other.call("startStream", content_id=movie["id"])["event"] == "startStream"


@pytest.mark.parametrize("change", [{"is_active": False}, {"role": "creator"}], ids=["deactivated", "role"])
def test_an_admin_change_closes_every_socket_of_the_user_and_ends_every_stream(
    client, runner, players, movie, funded_viewer, make_admin, clock, change
):
    admin, viewer = make_admin(), funded_viewer("10")
    second = login(client, viewer["user"]["email"])
    phone, tablet = players(viewer["access_token"]), players(second["access_token"])
    on_phone = phone.call("startStream", content_id=movie["id"])["data"]["session_id"]
    gone = players(second["access_token"])  # a player that started a stream, then lost its connection
    orphan = gone.call("startStream", content_id=movie["id"])["data"]["session_id"]
    gone.close()
    clock.advance(3)
    assert phone.call("heartbeat", session_id=on_phone)["data"]["billed_seconds"] == 3
    clock.advance(4)

    url = f"/api/v1/users/{viewer['user']['id']}"
    assert client.patch(url, json=change, headers=bearer(admin["access_token"])).status_code == 200
    on_phone_frames = closed_by_server(phone)
    assert {"event": "streamEnded", "data": {"session_id": on_phone, "reason": "revoked"}} in on_phone_frames
    for frames in (on_phone_frames, closed_by_server(tablet)):
        assert frames[-1]["event"] == "error" and frames[-1]["data"]["code"] == "unauthorized", frames

    client.patch(url, json={"is_active": True, "role": "viewer"}, headers=bearer(admin["access_token"]))
    again = login(client, viewer["user"]["email"])
    for session_id, billed_ms in ((on_phone, 3000), (orphan, 0)):
        row = session(client, again, session_id)
        assert row["status"] == "ended" and row["end_reason"] == "revoked", row
        assert row["billed_ms"] == billed_ms and stroops(row["charged"]) == billed_ms * 100
    check = runner.invoke(args=["ledger", "check"])
    assert check.exit_code == 0, check.output


def test_start_stream_is_refused_on_a_socket_whose_sign_in_was_revoked(app, app_factory, players, movie, funded_viewer):
    """A process that missed the push (here: another app with a Redis of its own) still refuses to start a stream."""
    viewer = funded_viewer("10")
    player = players(viewer["access_token"])
    listening(app)
    elsewhere = app_factory(REDIS_URL=None).test_client()
    assert elsewhere.post(LOGOUT, headers=bearer(viewer["access_token"])).status_code == 200
    refused = player.call("startStream", content_id=movie["id"])
    assert refused["event"] == "error" and refused["data"]["code"] == "unauthorized", refused


def test_start_stream_is_refused_after_a_role_change_the_socket_did_not_hear_of(
    app, app_factory, players, movie, funded_viewer, make_admin
):
    admin, viewer = make_admin(), funded_viewer("10")
    player = players(viewer["access_token"])
    listening(app)
    elsewhere = app_factory(REDIS_URL=None).test_client()
    url = f"/api/v1/users/{viewer['user']['id']}"
    assert elsewhere.patch(url, json={"role": "creator"}, headers=bearer(admin["access_token"])).status_code == 200
    refused = player.call("startStream", content_id=movie["id"])
    assert refused["event"] == "error" and refused["data"]["code"] == "unauthorized", refused


@pytest.mark.skipif(
    not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")),
    reason="the dyno and the tests share state only through a real PostgreSQL and Redis",
)
def test_a_socket_on_the_web_dyno_closes_when_its_sign_in_ends_elsewhere(client, movie, funded_viewer):
    viewer = funded_viewer("10")
    with web_dyno(WEB_CONCURRENCY="2", WEB_CONNECTIONS="50") as (port, log):
        player = Player(f"ws://127.0.0.1:{port}", viewer["access_token"])
        try:
            session_id = player.call("startStream", content_id=movie["id"])["data"]["session_id"]
            assert client.post(LOGOUT, headers=bearer(viewer["access_token"])).status_code == 200
            frames = closed_by_server(player)
        finally:
            with contextlib.suppress(ConnectionClosed):
                player.close()
    assert {"event": "streamEnded", "data": {"session_id": session_id, "reason": "revoked"}} in frames
    assert frames[-1]["event"] == "error" and frames[-1]["data"]["code"] == "unauthorized", frames
    assert "Traceback" not in log(), log()


def test_a_socket_the_server_closes_waits_for_the_players_close_frame(client, server):
    """RFC 6455's closing handshake: the server's close frame, then its side of the connection ends, and the player's
    close frame is read before the connection closes. A frame the player sent before it saw the server's close is
    read and dropped, not left unread: a socket closed with unread data is reset, and a reset can cost the player
    the close frame and its code (1013 for a shed socket, which says the session goes on)."""
    who = register(client)
    host, port = server.removeprefix("ws://").split(":")
    conn = WSConnection(ConnectionType.CLIENT)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        target, headers = "/api/v1/streaming/ws", [("authorization", f"Bearer {who['access_token']}")]
        sock.sendall(conn.send(Request(host=f"{host}:{port}", target=target, extra_headers=headers)))
        events = read_events(sock, conn, until=AcceptConnection)

        assert client.post(LOGOUT, headers=bearer(who["access_token"])).status_code == 200
        time.sleep(0.5)  # the server's error frame and close frame wait here, unread: the player has not seen them
        sock.sendall(conn.send(TextMessage('{"event": "heartbeat", "id": 1, "data": {"session_id": "x"}}')))
        time.sleep(0.5)
        events = read_events(sock, conn, until=CloseConnection)
        close = events[-1]
        assert close.code == 1008, events
        assert any(isinstance(e, TextMessage) and '"unauthorized"' in e.data for e in events), events
        sock.sendall(conn.send(close.response()))
        assert sock.recv(1024) == b""  # the server closed after our close frame: an end, not a reset


def read_events(sock, conn: WSConnection, until: type) -> list:
    """The events read up to the first of type `until`; a reset of the connection fails the test."""
    events = []
    while not events or not isinstance(events[-1], until):
        data = sock.recv(65536)
        assert data, f"the connection ended before {until.__name__}: {events}"
        conn.receive_data(data)
        events.extend(conn.events())
    return events
