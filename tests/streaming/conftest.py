from __future__ import annotations

import json
import threading

import pytest
from simple_websocket import Client
from werkzeug.serving import make_server
from werkzeug.wsgi import ClosingIterator

from streampay.sandbox.faults import wait_for
from tests.conftest import PASSWORD, bearer, register
from tests.content.conftest import media_files, media_root, ready_item, run_jobs  # noqa: F401 (fixtures)


class FakeClock:
    """The server's clock, moved by the test: bills are checked to the stroop."""

    def __init__(self, start_ms: int = 1_800_000_000_000):
        self.now = start_ms

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1000)


@pytest.fixture(scope="session")
def redis_of_our_own():
    """A redis-server of the tests' own on a free port, to stop and start at will; it lives to the end of the run,
    so the push listener of an app that used it never loops on a dead port (and on the random module's jitter)
    while later tests run."""
    from streampay.sandbox.faults import RedisServer

    with RedisServer() as server:
        yield server


@pytest.fixture
def clock():
    return FakeClock()


# The terms the streaming and analytics tests bill under: a minute held ahead, a 10 % fee.
BILLING = {
    "STREAM_WINDOW_SECONDS": 60,
    "STREAM_MIN_SECONDS": 10,
    "HEARTBEAT_TIMEOUT_SECONDS": 15,
    "CHECKPOINT_LEAD_SECONDS": 10,
    "PLATFORM_FEE_BPS": 1000,
}


def streaming_app(app_factory, media: str, clock, **overrides):
    """An app on the billing terms above, its media under `media`, on the test's clock."""
    app = app_factory(MEDIA_ROOT=media, **BILLING, BALANCE_LOW_SECONDS=30, RATELIMIT_ENABLED=False, **overrides)
    app.extensions["streampay.clock"] = clock
    return app


@pytest.fixture
def app(app_factory, media_root, clock):  # noqa: F811
    return streaming_app(app_factory, media_root, clock)


@pytest.fixture
def server(app):
    """The app on a real threaded HTTP server on loopback, for WebSocket clients."""
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"ws://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


class Player:
    """A test player: sends frames, and sorts what comes back into replies and pushes."""

    def __init__(self, url: str, token: str | None = None):
        headers = bearer(token) if token else {}
        self.ws = Client.connect(f"{url}/api/v1/streaming/ws", headers=headers)
        self.pushes: list[dict] = []
        self.serial = 0

    def send_raw(self, raw: str) -> dict:
        self.ws.send(raw)
        return self.next_reply()

    def next_reply(self, timeout: float = 20.0) -> dict:
        while True:
            raw = self.ws.receive(timeout=timeout)
            assert raw is not None, "no frame arrived"
            frame = json.loads(raw)
            if frame["event"] in ("streamEnded", "balanceLow") and "id" not in frame:
                self.pushes.append(frame)
                continue
            return frame

    def call(self, event: str, **data) -> dict:
        self.serial += 1
        self.ws.send(json.dumps({"event": event, "id": self.serial, "data": data}))
        reply = self.next_reply()
        assert reply.get("id") == self.serial, reply
        return reply

    def wait_push(self, event: str, timeout: float = 20.0) -> dict:
        for push in self.pushes:
            if push["event"] == event:
                self.pushes.remove(push)
                return push
        while True:
            raw = self.ws.receive(timeout=timeout)
            assert raw is not None, f"no {event} push arrived"
            frame = json.loads(raw)
            if frame["event"] == event:
                return frame
            self.pushes.append(frame)

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def players(server):
    made = []

    def connect(token: str | None = None) -> Player:
        player = Player(server, token)
        made.append(player)
        return player

    yield connect
    for p in made:
        try:
            p.close()
        except Exception:  # noqa: S110 (already closed by the server)
            pass


@pytest.fixture
def creator(client):
    return register(client, role="creator")


@pytest.fixture
def movie(app, client, creator, media_files):  # noqa: F811
    """A ready video of an hour priced at 0.0100000 per second (100,000 stroops)."""
    return ready_item(app, client, creator, media_files["feature"], price_per_second="0.0100000")


@pytest.fixture
def funded_viewer(client, runner):
    """A viewer whose wallet an admin credited with 10 units, through the CLI."""

    def make(amount: str = "10") -> dict:
        viewer = register(client)
        result = runner.invoke(args=["wallet", "credit", viewer["user"]["email"], amount, "--reason", "welcome"])
        assert result.exit_code == 0, result.output
        return viewer

    return make


def beat_concurrently(players_by_credit: dict, beats: int) -> list[tuple[int, dict]]:
    """Every player heartbeats `beats` times at once, each from its own thread; (credit, reply) for every reply."""
    replies, errors = [], []

    def run(credit: int, player, session_id: str) -> None:
        try:
            for _ in range(beats):
                replies.append((credit, player.call("heartbeat", session_id=session_id)))
        except Exception as exc:  # noqa: BLE001 (reported below, with the rest)
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c, p, s)) for c, (p, s) in players_by_credit.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert len(replies) == beats * len(players_by_credit)
    return replies


__all__ = ["BILLING", "PASSWORD", "run_jobs"]


def stroops(amount: str) -> int:
    from streampay import money

    return money.parse(amount)


class serve:  # noqa: N801 (a context manager used like a function)
    """`with serve(app) as url:` the app on a real loopback server for the block.

    On leaving the block, the requests still running finish first (a socket the client closed ends its handler,
    which counts it closed), so what the block did is all done when the test looks: no waiting on the server.
    """

    DRAIN_CAP_SECONDS = 30  # a socket the test left open is not waited for past this

    def __init__(self, app):
        self.running = 0
        self.idle = threading.Condition()
        self.httpd = make_server("127.0.0.1", 0, self._counted(app), threaded=True)

    def _counted(self, app):
        def wsgi(environ, start_response):
            with self.idle:
                self.running += 1
            try:
                body = app(environ, start_response)
            except BaseException:  # a WebSocket's end included: flask-sock drops the connection by raising
                self._finished()
                raise
            return ClosingIterator(body, self._finished)

        return wsgi

    def _finished(self) -> None:
        with self.idle:
            self.running -= 1
            self.idle.notify_all()

    def __enter__(self) -> str:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return f"ws://127.0.0.1:{self.httpd.server_port}"

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        with self.idle:
            self.idle.wait_for(lambda: self.running == 0, timeout=self.DRAIN_CAP_SECONDS)
        self.httpd.server_close()


def listening(app) -> None:
    """The app's push listener is subscribed and has checked its sockets. Until then a heartbeat checks its own
    socket's access in PostgreSQL, and a change made after this one is a push the listener can miss (on a busy
    machine it subscribes late, and its first check would close the socket instead)."""
    assert wait_for(lambda: app.extensions["streampay.hub"].live, 20)
