"""A player's socket read by its own greenlet, and its pings sent by one pinger per process.

simple_websocket gives every socket a reader thread (under gevent, a second greenlet) that waits
on a selector and wakes the socket's greenlet with an event for each frame: per frame, a selector
watcher started and stopped, a timer, an event and two greenlet switches, and per socket a second
greenlet's stack. Its `thread_class` and `event_class` options replace both: no reader is started,
and the socket's greenlet, waiting in `receive()` on the event, reads the socket itself instead
(one blocking `recv`, parsed by the same wsproto code). Pings, which the reader thread sent every
`ping_interval`, come from one pinger per process, a queue in order of when each socket is due,
that closes a socket whose last ping went unanswered, as simple_websocket does, and skips a socket
that sent a frame since its last turn (its player is there).

A socket the server closes (`close_gently`: shed, or its access revoked) is closed as RFC 6455 says: its side
ends after the close frame, and it is read on until the player's close frame answers it (or for
CLOSE_GRACE_SECONDS at most). Shut at once, what the player had sent meanwhile lay unread; closing a socket with
unread data resets the connection, and a player could lose the close frame to the reset (a browser then reports
1006, not the 1013 that says its session goes on).

bench/heartbeats.py's echo phase serves its echo through the same reader, so its baseline moves
with it.
"""

from __future__ import annotations

import collections
import socket
import threading
import time

from simple_websocket import ConnectionClosed, Server
from wsproto.events import Ping
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason, Opcode
from wsproto.utilities import LocalProtocolError

CLOSE_GRACE_SECONDS = 2.0  # how long a socket the server closed waits for the player's close frame


class ReadInline:
    """The socket's `event`: waiting for it reads the socket once, in the waiting greenlet.

    `Server.receive()` waits on its event until a message is in its input buffer or the socket is
    closed; each wait here reads what has arrived and hands it to the server's own event handling,
    which fills the buffer, answers pings and notes a close.
    """

    def __init__(self):
        self.server: Server | None = None  # set by InlineReader.start(), once the handshake is done

    def wait(self, timeout: float | None = None) -> bool:
        server = self.server
        sock = server.sock
        if timeout is not None:
            previous = sock.gettimeout()
            sock.settimeout(timeout)
        try:
            data = sock.recv(server.receive_bytes)
            if not data:
                raise ConnectionResetError
            server.heard = True  # the player is there: no ping needed this interval (ping())
            server.ws.receive_data(data)
            open_ = server._handle_events()  # False once the player's close frame came (or the connection broke)
            if server.closing:  # closed by the server: nothing more is answered; `linger` reads on to the close
                server.input_buffer.clear()
                server.connected = False
                if open_:
                    return True
            server.connected = open_
        except TimeoutError:
            return False
        except (OSError, LocalProtocolError):
            server.connected = False
        finally:
            if timeout is not None:
                sock.settimeout(previous)
        if not server.connected:  # as simple_websocket's reader did on its way out: close, and let go of the server
            sock.close()
            self.server = None  # no reference cycle left: the server is freed by reference count
        return True

    def set(self) -> None:
        """Nothing waits on it: the greenlet that reads is the one that receives."""

    def clear(self) -> None:
        pass

    def is_set(self) -> bool:
        return False


class InlineReader:
    """simple_websocket's reader `thread_class`: it starts no thread; the socket is read by `ReadInline` and
    pinged by the process's pinger."""

    name = "(_thread)"

    def __init__(self, target, **_):
        self.server = target.__self__  # `target` is the server's bound `_thread`

    def start(self) -> None:
        server, self.server = self.server, None  # no cycle: the event's link is dropped once the socket closes
        server.event.server = server
        server.closing = False  # set by close_gently
        _send_small_messages_plain(server)
        if server.ping_interval:
            pinger(server.ping_interval).add(server)


class SmallMessagesPlain(PerMessageDeflate):
    """permessage-deflate, as agreed with the player, except that a message the server sends under `THRESHOLD` bytes
    goes out uncompressed (RSV1 unset; RFC 7692 lets each message choose), as Node's `ws` does by default.

    A reply is about a hundred bytes of JSON: deflating it saves a few dozen bytes and costs a zlib call per frame,
    and the first one makes the socket's compressor, about 100 KiB that the socket then holds for as long as it is
    open. What the player sends is inflated as before, within its limit.
    """

    THRESHOLD = 1024
    _plain = True

    def frame_outbound(self, proto, opcode: Opcode, rsv, data: bytes, fin: bool):
        if opcode in (Opcode.TEXT, Opcode.BINARY):  # a message's first frame decides for its continuations
            self._plain = len(data) < self.THRESHOLD
        if self._plain and self._compressible_opcode(opcode):
            return rsv, data
        return super().frame_outbound(proto, opcode, rsv, data, fin)


def _send_small_messages_plain(server: Server) -> None:
    """The handshake agreed permessage-deflate (simple_websocket offers its own instance): send small ones plain."""
    proto = getattr(server.ws.connection, "_proto", None)
    for extension in getattr(proto, "extensions", ()):
        if type(extension) is PerMessageDeflate:
            extension.__class__ = SmallMessagesPlain


def hang_up(server: Server) -> bool:
    """Close the socket under its reading greenlet, which then sees the connection closed (False: done with it)."""
    server.connected = False
    try:
        server.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    return False


def close_gently(server: Server) -> None:
    """After the server's close frame (`Server.close`): end this side of the connection, a FIN behind the frame, and
    leave the socket open for its greenlet to read the player's close frame, discarding what came before it (`linger`
    on its way out, or `ReadInline.wait` if it was waiting for a frame); hung up on after CLOSE_GRACE_SECONDS."""
    server.closing = True
    try:
        server.sock.shutdown(socket.SHUT_WR)
    except OSError:
        hang_up(server)
        return
    schedule(CLOSE_GRACE_SECONDS, hang_up, "ws-closer").add(server)


def linger(server: Server) -> None:
    """On the way out of a socket closed by the server: read until the player's close frame, or the grace's end."""
    deadline = time.monotonic() + CLOSE_GRACE_SECONDS
    while server.event.server is not None and (left := deadline - time.monotonic()) > 0:
        server.event.wait(left)


class Schedule:
    """One thread that calls `action(server)` `delay` seconds after each `add(server)`, and again `delay` later for as
    long as it returns True. Every server waits the same delay, so the order they join in is the order they are
    due in: a queue, not a heap."""

    def __init__(self, delay: float, action, name: str):
        self.delay, self.action = delay, action
        self.due: collections.deque[tuple[float, Server]] = collections.deque()
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def add(self, server: Server) -> None:
        self.due.append((time.monotonic() + self.delay, server))

    def _run(self) -> None:
        while True:
            now = time.monotonic()
            while self.due and self.due[0][0] <= now:
                _, server = self.due.popleft()
                if self.action(server):
                    self.due.append((now + self.delay, server))
            time.sleep(min(1.0, self.due[0][0] - now) if self.due else 1.0)


def ping(server: Server) -> bool:
    """Ping the socket, or close it if the last ping went unanswered; whether it stays open.

    A player that sent anything since the last turn is there: it is not pinged this interval (a player that beats
    every 5 s is never pinged, and a ping and its pong cost the worker about what a heartbeat's frames do)."""
    if not server.connected:
        return False
    if getattr(server, "heard", False):
        server.heard, server.pong_received = False, True
        return True
    try:
        if not server.pong_received:
            server.close(reason=CloseReason.POLICY_VIOLATION, message="Ping/Pong timeout")
            hang_up(server)
            return False
        server.pong_received = False
        server.sock.send(server.ws.send(Ping()))
        return True
    except (OSError, LocalProtocolError, ConnectionClosed):  # closed meanwhile, by its own greenlet or the peer
        hang_up(server)
        return False


_SCHEDULES: dict[tuple, Schedule] = {}
_SCHEDULES_LOCK = threading.Lock()


def schedule(delay: float, action, name: str) -> Schedule:
    """The process's schedule of `action` every `delay` seconds, started on first use."""
    with _SCHEDULES_LOCK:
        found = _SCHEDULES.get((delay, action))
        if found is None:
            found = _SCHEDULES[(delay, action)] = Schedule(delay, action, name)
        return found


def pinger(interval: float) -> Schedule:
    """The process's pinger for sockets pinged every `interval` seconds."""
    return schedule(interval, ping, "ws-pinger")
