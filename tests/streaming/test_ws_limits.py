"""What a player sends is bounded: a deflate bomb is closed with 1009 before it inflates; hostile JSON gets `error`."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import tracemalloc
import zlib
from urllib.parse import urlsplit

import pytest

from streampay.money import MAX_STROOPS, format


def deflate_bomb(inflated: int) -> bytes:
    """A permessage-deflate payload that inflates to `inflated` bytes of JSON-ish text."""
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = b" " * (1 << 20)
    out = [squeeze.compress(b'{"event": "heartbeat", "data": {"pad": "')]
    for _ in range(inflated // len(chunk)):
        out.append(squeeze.compress(chunk))
    out.append(squeeze.flush(zlib.Z_SYNC_FLUSH))
    return b"".join(out)[:-4]  # permessage-deflate drops the sync flush's 00 00 ff ff


def masked_frame(payload: bytes, *, compressed: bool) -> bytes:
    first = 0x80 | 0x01 | (0x40 if compressed else 0)  # FIN, text, RSV1 when compressed
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", first, 0x80 | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, length)
    mask = os.urandom(4)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def raw_socket(url: str, headers: dict | None = None) -> socket.socket:
    """A WebSocket handshake by hand, offering permessage-deflate; fails unless it is accepted."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        "GET /api/v1/streaming/ws HTTP/1.1",
        f"Host: {parts.hostname}:{parts.port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
        *[f"{k}: {v}" for k, v in (headers or {}).items()],
    ]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    reply = b""
    while b"\r\n\r\n" not in reply:
        reply += sock.recv(4096)
    head = reply.split(b"\r\n\r\n")[0].decode().lower()
    assert head.startswith("http/1.1 101") and "permessage-deflate" in head, head
    return sock


def close_code(sock: socket.socket) -> int | None:
    """Read frames until the server's close frame; its status code."""
    buffer = b""
    while True:
        try:
            data = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            return None
        if not data:
            return None
        buffer += data
        while len(buffer) >= 2:
            opcode, length = buffer[0] & 0x0F, buffer[1] & 0x7F
            offset = 2
            if length == 126:
                length, offset = struct.unpack("!H", buffer[2:4])[0], 4
            elif length == 127:
                length, offset = struct.unpack("!Q", buffer[2:10])[0], 10
            if len(buffer) < offset + length:
                break
            payload, buffer = buffer[offset : offset + length], buffer[offset + length :]
            if opcode == 0x8:
                return struct.unpack("!H", payload[:2])[0]


@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "signed-in"])
def test_a_deflate_bomb_is_closed_with_1009_before_it_inflates(server, funded_viewer, signed_in):
    headers = {"Authorization": f"Bearer {funded_viewer()['access_token']}"} if signed_in else {}
    bomb = deflate_bomb(512 << 20)  # half a GiB of spaces
    assert len(bomb) < 1 << 20
    sock = raw_socket(server, headers)
    tracemalloc.start()
    try:
        try:
            sock.sendall(masked_frame(bomb, compressed=True))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading: it already closed
        code = close_code(sock)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        sock.close()
    assert code == 1009
    # The server inflated a few 4 KiB reads, not the half GiB (this test's own frame is about 1 MiB).
    assert peak < 64 << 20, f"peak traced memory {peak >> 20} MiB"


def test_a_small_compressed_frame_is_read_and_answered_plain(server, funded_viewer):
    sock = raw_socket(server, {"Authorization": f"Bearer {funded_viewer()['access_token']}"})
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -15)
    payload = squeeze.compress(b'{"event": "nope", "id": 1}') + squeeze.flush(zlib.Z_SYNC_FLUSH)
    sock.sendall(masked_frame(payload[:-4], compressed=True))
    data = sock.recv(65536)
    sock.close()
    # An `error` reply, not a close; under 1 KiB, so sent uncompressed (RSV1 unset), as plain JSON.
    assert data[0] == 0x81, data[:2]  # FIN, text, RSV1 unset
    length, offset = (data[1], 2) if data[1] < 126 else (struct.unpack("!H", data[2:4])[0], 4)
    assert json.loads(data[offset : offset + length])["event"] == "error"


def test_a_large_message_the_server_sends_is_still_compressed():
    from wsproto.frame_protocol import FrameProtocol, Opcode, RsvBits

    from streampay.streaming.reader import SmallMessagesPlain

    deflate, big = SmallMessagesPlain(), json.dumps({"event": "x", "data": {"pad": " " * 4096}}).encode()
    rsv, data = deflate.frame_outbound(FrameProtocol(False, []), Opcode.TEXT, RsvBits(False, False, False), big, True)
    assert rsv.rsv1 and zlib.decompressobj(-15).decompress(data + b"\x00\x00\xff\xff") == big
    rsv, data = deflate.frame_outbound(FrameProtocol(False, []), Opcode.TEXT, RsvBits(False, False, False), b"{}", True)
    assert not rsv.rsv1 and data == b"{}"


@pytest.mark.parametrize(
    "raw",
    [
        '{"event": "startStream", "data": ' + "[" * 1000 + "]" * 1000 + "}",
        "[" * 2000 + "]" * 2000,
        '{"event": "auth", "data": {"token": "\\ud800"}}',
        '{"event": "startStream", "data": {"content_id": "\\udfff"}}',
        '{"event": "heartbeat", "data": {"session_id": NaN}}',
    ],
    ids=["deep-data", "deep", "surrogate-token", "surrogate-id", "nan"],
)
def test_hostile_json_frames_get_an_error_and_the_socket_lives(players, movie, funded_viewer, raw):
    player = players(funded_viewer()["access_token"])
    reply = player.send_raw(raw)
    # The string HTTP answers the same body with (422): one vocabulary for both doors.
    assert reply["event"] == "error" and reply["data"]["code"] == "validation_failed", reply
    assert player.call("startStream", content_id=movie["id"])["event"] == "startStream"


@pytest.mark.parametrize(
    "max_spend", [format(MAX_STROOPS + 1), "99999999999999999999", "\u0661\u0662", "\uff11", "1e3", 5]
)
def test_amounts_past_64_bits_or_in_other_digits_get_an_error(players, movie, funded_viewer, max_spend):
    player = players(funded_viewer()["access_token"])
    reply = player.call("startStream", content_id=movie["id"], max_spend=max_spend)
    assert reply["event"] == "error" and "max_spend" in json.dumps(reply["data"].get("errors")), reply
    assert reply["data"]["code"] == "validation_failed", reply
