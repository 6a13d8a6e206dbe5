"""Each socket is read by its own greenlet (or thread) and pinged by the process's pinger
(streampay/streaming/reader.py): a player that answers pings stays, one that does not is closed with 1008."""

from __future__ import annotations

import json
import struct
import time

import pytest
from simple_websocket import Client

from tests.streaming.conftest import BILLING
from tests.streaming.test_ws_limits import masked_frame, raw_socket

PING_SECONDS = 1


@pytest.fixture
def app(app_factory, media_root):
    return app_factory(
        MEDIA_ROOT=media_root,
        **BILLING,
        RATELIMIT_ENABLED=False,
        SOCK_SERVER_OPTIONS={"ping_interval": PING_SECONDS, "max_message_size": 64 * 1024},
    )


def frames(sock, seconds: float) -> list[tuple[int, bytes]]:
    """(opcode, payload) of every frame the server sends until it hangs up, or `seconds` pass."""
    sock.settimeout(seconds)
    buffer, found = b"", []
    try:
        while data := sock.recv(65536):
            buffer += data
            while frame := _whole_frame(buffer):
                opcode, payload, buffer = frame
                found.append((opcode, payload))
    except TimeoutError:
        pass
    return found


def _whole_frame(buffer: bytes) -> tuple[int, bytes, bytes] | None:
    """The first unmasked frame of `buffer` (opcode, payload, the rest), if it is all there (no 64-bit lengths)."""
    if len(buffer) < 2:
        return None
    length, start = buffer[1] & 0x7F, 2
    if length == 126:
        if len(buffer) < 4:
            return None
        length, start = struct.unpack("!H", buffer[2:4])[0], 4
    if len(buffer) < start + length:
        return None
    return buffer[0] & 0x0F, buffer[start : start + length], buffer[start + length :]


def test_a_player_that_never_answers_a_ping_is_closed_with_1008(server):
    sock = raw_socket(server)  # never answers anything
    began = time.monotonic()
    try:
        seen = frames(sock, 6 * PING_SECONDS)
    finally:
        sock.close()
    waited = time.monotonic() - began
    opcodes = [opcode for opcode, _ in seen]
    assert opcodes[0] == 0x9, seen  # a ping, after an interval
    assert opcodes[-1] == 0x8, seen  # then, a ping later with no pong, the close ...
    assert struct.unpack("!H", seen[-1][1][:2])[0] == 1008
    assert waited < 5 * PING_SECONDS  # ... and the connection hung up, not left open


def test_a_player_that_keeps_sending_is_not_pinged_and_stays(server):
    """Frames from the player prove it is there: no ping (and no pong to read) while it talks, however long."""
    sock = raw_socket(server)  # never answers a ping: a ping, once missed, would close it
    seen = []
    try:
        for _ in range(int(4 * PING_SECONDS / 0.25)):
            sock.sendall(masked_frame(b'{"event": "nope"}', compressed=False))
            seen += frames(sock, 0.25)
        sock.sendall(masked_frame(b'{"event": "nope", "id": 9}', compressed=False))
        seen += frames(sock, 1)
    finally:
        sock.close()
    opcodes = [opcode for opcode, _ in seen]
    assert 0x8 not in opcodes, seen  # never closed, though it answers no ping ...
    assert opcodes.count(0x9) <= 1, seen  # ... and not pinged (one, if the test itself stalled a whole interval)
    assert json.loads(seen[-1][1])["id"] == 9


def test_a_player_that_answers_pings_stays_and_is_served(server):
    client = Client(f"{server}/api/v1/streaming/ws")  # answers pings by itself
    try:
        time.sleep(3.5 * PING_SECONDS)
        client.send(json.dumps({"event": "nope", "id": 7}))
        reply = json.loads(client.receive(timeout=5))
    finally:
        client.close()
    assert reply["id"] == 7 and reply["event"] == "error"


def test_a_closing_player_ends_its_socket_on_the_server(server, app):
    """The socket's own greenlet sees the close and ends the handler: the process's count of sockets goes down."""
    hub = app.extensions["streampay.hub"]
    client = Client(f"{server}/api/v1/streaming/ws")
    client.send(json.dumps({"event": "nope", "id": 1}))
    client.receive(timeout=5)
    assert hub.sockets == 1
    client.close()
    deadline = time.monotonic() + 5
    while hub.sockets and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hub.sockets == 0


def test_a_closed_socket_leaves_nothing_for_the_collector(server, app):
    """A worker freezes the sockets it holds out of the collections (gunicorn.conf.py): that leaks nothing only if a
    closed socket's objects are freed by their reference counts, none of them in a cycle: the player, and the server
    end of the socket with its reader. (flask_sock makes a class per socket as it ends, which refers to the server:
    a young cycle, and the server is freed with it.)"""
    import gc

    from simple_websocket import Server

    from streampay.streaming.ws import Player

    hub = app.extensions["streampay.hub"]
    warm = Client(f"{server}/api/v1/streaming/ws")  # the process's pinger and listener, started once
    warm.close()
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        client = Client(f"{server}/api/v1/streaming/ws")
        client.send(json.dumps({"event": "nope", "id": 1}))
        client.receive(timeout=5)
        client.close()
        deadline = time.monotonic() + 5
        while hub.sockets and time.monotonic() < deadline:
            time.sleep(0.05)
        assert hub.sockets == 0
        time.sleep(PING_SECONDS + 0.5)  # the pinger lets go of a closed socket at its next ping
        gc.collect()
        pool = {id(o): o for o in gc.garbage}
        left = [type(o).__name__ for o in gc.garbage if issubclass(type(o), (Player, Server)) and _in_a_cycle(o, pool)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert left == []


def _in_a_cycle(start, pool: dict) -> bool:
    """Whether `start` can reach itself through the objects of `pool` (id -> object)."""
    import gc

    seen, todo = set(), [r for r in gc.get_referents(start) if id(r) in pool]
    while todo:
        found = todo.pop()
        if found is start:
            return True
        if id(found) not in seen:
            seen.add(id(found))
            todo.extend(r for r in gc.get_referents(found) if id(r) in pool)
    return False
