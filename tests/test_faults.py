"""The platform heals by itself: Redis killed and restarted empty, PostgreSQL connections killed or cut.

Real processes only: a redis-server of the test's own on a free port (kill -9, then started again with
nothing in it), the Procfile's lines as subprocesses, PostgreSQL backends of the test's own database
terminated with pg_terminate_backend. Intervals are short (settings in the dynos' environment).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request

import pytest
import redis
from rq.registry import FinishedJobRegistry
from simple_websocket import ConnectionClosed
from sqlalchemy import make_url

from streampay.content import samples
from streampay.sandbox.faults import Dyno, RedisServer, TcpCut, free_port, wait_for
from streampay.streaming.meter import PUSH_CHANNEL
from tests.conftest import bearer, register
from tests.content.conftest import ready_item, upload
from tests.streaming.conftest import Player, serve, stroops
from tests.streaming.test_revocation import closed_by_server

pytestmark = pytest.mark.skipif(
    not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL") and shutil.which("redis-server")),
    reason="faults are injected into a real PostgreSQL and a redis-server of the test's own",
)
PRICE = "0.0100000"  # 100,000 stroops a second


@pytest.fixture(scope="session")
def redis_server():
    """One for the session, so it is up before each test's app and after its clean-up (which flushes it)."""
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def long_video(tmp_path_factory) -> str:
    """Ten minutes of tiny video: no stream here reaches the end of its media."""
    path = str(tmp_path_factory.mktemp("long") / "long.mp4")
    return samples.make_video(path, seconds=600, size=(64, 36), fps=1, with_audio=False)


@pytest.fixture
def media_root(tmp_path) -> str:
    root = tmp_path / "media"
    root.mkdir()
    return str(root)


@pytest.fixture
def app(app_factory, redis_server, media_root):
    app = app_factory(REDIS_URL=redis_server.url(), MEDIA_ROOT=media_root, RATELIMIT_ENABLED=False)
    yield app
    if not redis_server.answers():  # the clean-up flushes it
        redis_server.start()


@pytest.fixture
def movie(app, client, long_video) -> dict:
    return ready_item(app, client, register(client, role="creator"), long_video, price_per_second=PRICE)


@pytest.fixture
def viewer(client, runner):
    def make(amount: str = "1") -> dict:
        who = register(client)
        result = runner.invoke(args=["wallet", "credit", who["user"]["email"], amount, "--reason", "test"])
        assert result.exit_code == 0, result.output
        return who

    return make


@pytest.fixture
def dyno_env(redis_server, media_root):
    def env(**extra) -> dict:
        return {
            "REDIS_URL": redis_server.url(),
            "MEDIA_ROOT": media_root,
            "LOG_LEVEL": "WARNING",
            "RATELIMIT_ENABLED": "false",
            "RECONNECT_MAX_SECONDS": "1",
            **{k: str(v) for k, v in extra.items()},
        }

    return env


def http(url: str, token: str | None = None) -> tuple[int, dict, dict]:
    """GET: status, JSON body, headers (errors too)."""
    request = urllib.request.Request(url, headers=bearer(token) if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310 (loopback)
            return reply.status, json.loads(reply.read()), dict(reply.headers)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), dict(err.headers)


def pushes_arrive(base: str, client) -> None:
    """Wait for the push listener of the (one-worker) web process at `base` to be live: subscribed, and the sockets
    it held then checked in PostgreSQL. Until then its heartbeats check their own socket's access there (and get
    `unavailable` while PostgreSQL is away). A sign-in revoked meanwhile has its socket closed by a push: one that
    arrives comes after the check, on the listener's one thread."""
    who = register(client)
    witness = Player(base.replace("http", "ws"), who["access_token"])
    try:
        assert client.post("/api/v1/auth/logout", headers=bearer(who["access_token"])).status_code == 200
        frames = closed_by_server(witness, 20)
        assert any(f["event"] == "error" and f["data"]["code"] == "unauthorized" for f in frames), frames
    finally:
        with contextlib.suppress(ConnectionClosed):
            witness.close()


@contextlib.contextmanager
def web(env: dict, workers: int = 1):
    """The web line on a free port, ready; yields its base URL."""
    port = free_port()
    dyno = Dyno("web", PORT=str(port), WEB_CONCURRENCY=str(workers), WEB_CONNECTIONS="100", **env).start()
    base = f"http://127.0.0.1:{port}"

    def ready():
        with contextlib.suppress(OSError):
            return http(f"{base}/readyz")[0] == 200
        return not dyno.alive()

    try:
        assert wait_for(ready, 60) and dyno.alive(), dyno.log()
        yield base
    finally:
        log = dyno.stop()
    assert "Traceback" not in log, log


def reaps_finished(connection) -> int:
    with contextlib.suppress(redis.ConnectionError):
        return len(FinishedJobRegistry("high", connection=connection).get_job_ids())
    return 0


def test_clock_and_worker_reap_again_within_an_interval_of_redis_returning(app, redis_server, dyno_env):
    interval = 2
    env = dyno_env(REAPER_INTERVAL_SECONDS=interval)
    connection = redis.Redis.from_url(redis_server.url())
    with Dyno("clock", **env) as clock, Dyno("worker", **env) as worker:
        assert wait_for(lambda: reaps_finished(connection), 30), clock.log() + worker.log()
        redis_server.kill()
        time.sleep(3 * interval)  # several reaps missed; both loops are backing off
        assert clock.alive() and worker.alive(), clock.log() + worker.log()
        redis_server.start()  # empty: no queue, no schedule, no registries
        back = time.monotonic()
        # One interval, and what a loaded shared box adds to a fork and a job.
        assert wait_for(lambda: reaps_finished(connection), interval + 4), clock.log() + worker.log()
        print(f"reaper ran {time.monotonic() - back:.1f} s after Redis came back")
        assert clock.alive() and worker.alive()
        redis_server.kill()  # and once more, longer than the backoff's cap many times over
        time.sleep(4)
        redis_server.start()
        assert wait_for(lambda: reaps_finished(connection), interval + 4), clock.log() + worker.log()
    # Each outage is a line or two in each log (the worker's scheduler process too), never a traceback.
    assert "Traceback" not in clock.log() and "Traceback" not in worker.log(), clock.log() + worker.log()


def test_every_web_process_delivers_pushes_again_after_an_outage(app, client, redis_server, dyno_env, movie, viewer):
    env = dyno_env(STREAM_WINDOW_SECONDS=3, CHECKPOINT_LEAD_SECONDS=2, BALANCE_LOW_SECONDS=99)
    viewers = [viewer("1") for _ in range(6)]
    connection = redis.Redis.from_url(redis_server.url())

    def subscribers() -> int:
        with contextlib.suppress(redis.ConnectionError):
            return connection.pubsub_numsub(f"{PUSH_CHANNEL}:0")[0][1]
        return 0

    with web(env, workers=2) as base, serve(app) as here:
        url = base.replace("http", "ws")
        players = [Player(url, v["access_token"]) for v in viewers]
        try:
            for player in players:  # each worker that holds a player subscribes
                session_id = player.call("startStream", content_id=movie["id"])["data"]["session_id"]
                assert player.call("stopStream", session_id=session_id)["event"] == "stopStream"
                assert player.wait_push("streamEnded", timeout=10)["data"]["session_id"] == session_id
            listening = wait_for(subscribers, 10)
            assert listening, "no push listener subscribed"

            redis_server.kill()
            time.sleep(3)  # the listeners fail and back off
            redis_server.start()
            assert wait_for(lambda: subscribers() == listening, 15), (subscribers(), listening)

            # After the outage, balanceLow (a checkpoint on the player's own worker) and streamEnded (a stop
            # through another process) reach every player, whichever worker holds its socket.
            sessions = [p.call("startStream", content_id=movie["id"])["data"]["session_id"] for p in players]
            time.sleep(1.2)
            for player, session_id in zip(players, sessions, strict=True):
                assert player.call("heartbeat", session_id=session_id)["event"] == "heartbeat"
                assert player.wait_push("balanceLow", timeout=10)["data"]["session_id"] == session_id
            for v, session_id in zip(viewers, sessions, strict=True):
                elsewhere = Player(here, v["access_token"])
                assert elsewhere.call("stopStream", session_id=session_id)["event"] == "stopStream"
                elsewhere.close()
            for player, session_id in zip(players, sessions, strict=True):
                pushed = player.wait_push("streamEnded", timeout=10)
                assert pushed["data"] == {"session_id": session_id, "reason": "stopped"}
        finally:
            for player in players:
                player.close()


def test_while_redis_is_down_requests_get_503_and_heartbeats_unavailable(
    app, client, redis_server, dyno_env, movie, viewer
):
    who = viewer("10")
    token = who["access_token"]
    item = f"/api/v1/content/{movie['id']}"
    with web(dyno_env()) as base:
        player = Player(base.replace("http", "ws"), token)
        try:
            session_id = player.call("startStream", content_id=movie["id"])["data"]["session_id"]
            redis_server.kill()

            status, body, headers = http(base + item, token)
            assert status == 503, body
            assert body["code"] == 503 and body["status"] == "Service Unavailable" and body["message"], body
            assert int(headers["Retry-After"]) > 0
            status, body, headers = http(base + "/readyz")
            checks = body["errors"]["checks"]
            assert status == 503 and checks["redis"] == "unavailable" and checks["database"] == "ok", body
            assert "redis" in body["message"] and int(headers["Retry-After"]) > 0
            beat = player.call("heartbeat", session_id=session_id)
            assert beat["event"] == "error" and beat["data"]["code"] == "unavailable", beat
            started = player.call("startStream", content_id=movie["id"])
            assert started["event"] == "error" and started["data"]["code"] == "unavailable", started

            redis_server.start()
            assert http(base + item, token)[0] == 200  # the very first request after it returns
            assert http(base + "/readyz")[0] == 200
            again = player.call("startStream", content_id=movie["id"])
            assert again["event"] == "startStream", again
        finally:
            player.close()


def test_a_start_refused_for_redis_gives_its_hold_back_at_once(app, client, runner, redis_server, movie, viewer):
    who = viewer("10")
    wallet = "/api/v1/wallet"
    before = client.get(wallet, headers=bearer(who["access_token"])).json
    with serve(app) as here:
        player = Player(here, who["access_token"])  # opened while Redis answers: its hub is subscribed
        try:
            redis_server.kill()
            # PostgreSQL answers, so the hold is taken and the session written; then the meter cannot be made.
            refused = player.call("startStream", content_id=movie["id"])
            assert refused["event"] == "error" and refused["data"]["code"] == "unavailable", refused
            after = client.get(wallet, headers=bearer(who["access_token"])).json
            assert after["held"] == before["held"] == "0.0000000" and after["balance"] == before["balance"], after
            check = runner.invoke(args=["ledger", "check"])
            assert check.exit_code == 0, check.output
            active = client.get("/api/v1/streaming/sessions", headers=bearer(who["access_token"])).json
            assert [(s["status"], s["end_reason"], s["billed_ms"]) for s in active] == [("ended", "unavailable", 0)]
        finally:
            player.close()


def session_row(session_id: str) -> dict:
    with psql() as cur:
        cur.execute(
            "SELECT status, end_reason, billed_ms, charged, checkpoints FROM streaming_sessions WHERE id = %s",
            (session_id,),
        )
        status, reason, billed_ms, charged, checkpoints = cur.fetchone()
    return {"status": status, "reason": reason, "billed_ms": billed_ms, "charged": charged, "checkpoints": checkpoints}


def waits_for_a_lock(admin, database: str) -> bool:
    """Whether a connection to `database` waits for a lock now (`admin`: a cursor on the server)."""
    admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'", (database,))
    return admin.fetchone()[0] > 0


@contextlib.contextmanager
def psql(database: str | None = None):
    """A cursor on the tests' own database (or another on its server), autocommit."""
    import psycopg2

    url = make_url(os.environ["DATABASE_URL"]).set(drivername="postgresql")
    if database:
        url = url.set(database=database)
    conn = psycopg2.connect(url.render_as_string(hide_password=False))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


def test_a_redis_restart_without_persistence_loses_no_active_session(
    app, client, runner, redis_server, dyno_env, movie, viewer
):
    env = dyno_env(
        STREAM_WINDOW_SECONDS=3, CHECKPOINT_LEAD_SECONDS=2, HEARTBEAT_TIMEOUT_SECONDS=2, REAPER_INTERVAL_SECONDS=1
    )
    watcher, leaver = viewer("10"), viewer("10")
    with web(env) as base, Dyno("clock", **env) as clock, Dyno("worker", **env) as worker:
        url = base.replace("http", "ws")
        playing, gone = Player(url, watcher["access_token"]), Player(url, leaver["access_token"])
        try:
            began = time.monotonic()
            sessions = [p.call("startStream", content_id=movie["id"])["data"]["session_id"] for p in (playing, gone)]
            time.sleep(1.2)
            for player, session_id in zip((playing, gone), sessions, strict=True):  # each settles a checkpoint
                assert player.call("heartbeat", session_id=session_id)["event"] == "heartbeat"
            settled = [session_row(s) for s in sessions]
            assert all(row["checkpoints"] >= 1 and row["billed_ms"] >= 1000 for row in settled), settled
            time.sleep(0.5)

            redis_server.restart()  # kill -9, back at once with nothing in it
            wiped = time.monotonic()
            # The player that beats again goes on from its last checkpoint; the other is rebuilt by the reaper and
            # closed a timeout later, billed nothing past its checkpoint.
            for n in range(4):
                beat = playing.call("heartbeat", session_id=sessions[0])
                assert beat["event"] == "heartbeat", beat
                if n == 0:  # the beat that rebuilt the meter: exactly what the checkpoint settled, not a stroop less
                    assert stroops(beat["data"]["charged"]) == settled[0]["charged"], (beat, settled[0])
                time.sleep(0.8)
            assert beat["data"]["billed_seconds"] >= settled[0]["billed_ms"] // 1000 + 2
            stopped = playing.call("stopStream", session_id=sessions[0])
            assert stopped["event"] == "stopStream", stopped
            played = time.monotonic() - began

            def reaped():
                row = session_row(sessions[1])
                return row if row["status"] == "ended" else None

            closed = wait_for(reaped, 20)
            assert closed, (session_row(sessions[1]), clock.log(), worker.log())
        finally:
            playing.close()
            gone.close()

    kept = session_row(sessions[0])
    assert kept["status"] == "ended" and kept["reason"] == "stopped", kept
    # Billed: the checkpoint, then from the rebuild on; the play between the checkpoint and the wipe is not.
    assert settled[0]["billed_ms"] < kept["billed_ms"] <= (settled[0]["billed_ms"] + (played - (wiped - began)) * 1000)
    assert kept["charged"] == kept["billed_ms"] * 100
    assert closed["reason"] == "timeout" and closed["billed_ms"] == settled[1]["billed_ms"], (closed, settled[1])
    check = runner.invoke(args=["ledger", "check"])
    assert check.exit_code == 0, check.output


@pytest.mark.parametrize("revoke", ["logout", "deactivate"])
def test_a_revocation_while_redis_is_down_closes_the_sockets_once_it_returns(
    app, client, runner, redis_server, dyno_env, movie, viewer, make_admin, revoke
):
    """The push that closes a revoked sign-in's sockets goes through Redis: one sent while Redis is away reaches
    nobody, so every web process checks the sockets it holds against PostgreSQL as soon as it subscribes again."""
    env = dyno_env(STREAM_WINDOW_SECONDS=3, CHECKPOINT_LEAD_SECONDS=2)
    who, admin = viewer("10"), make_admin()
    with web(env, workers=2) as base:
        url = base.replace("http", "ws")
        idle, playing = Player(url, who["access_token"]), Player(url, who["access_token"])
        try:
            session_id = playing.call("startStream", content_id=movie["id"])["data"]["session_id"]
            time.sleep(1.2)
            assert playing.call("heartbeat", session_id=session_id)["event"] == "heartbeat"  # a checkpoint
            settled = session_row(session_id)
            assert settled["billed_ms"] >= 1000, settled

            redis_server.kill()
            if revoke == "logout":
                reply = client.post("/api/v1/auth/logout", headers=bearer(who["access_token"]))
            else:
                url_of_user = f"/api/v1/users/{who['user']['id']}"
                reply = client.patch(url_of_user, json={"is_active": False}, headers=bearer(admin["access_token"]))
            assert reply.status_code == 200, reply.json
            time.sleep(1)
            assert playing.call("heartbeat", session_id=session_id)["data"]["code"] == "unavailable"

            redis_server.start()  # empty: the meter is gone, the last proof of play is the checkpoint
            back = time.monotonic()
            frames = {"idle": closed_by_server(idle, 20)}
            print(f"the idle socket closed {time.monotonic() - back:.2f} s after Redis came back")
            with contextlib.suppress(ConnectionClosed):  # closed already by its process's check, or by this beat
                playing.ws.send(json.dumps({"event": "heartbeat", "id": 99, "data": {"session_id": session_id}}))
            frames["playing"] = closed_by_server(playing, 20)
        finally:
            for player in (idle, playing):
                with contextlib.suppress(ConnectionClosed):
                    player.close()

    for name, seen in frames.items():
        assert any(f["event"] == "error" and f["data"]["code"] == "unauthorized" for f in seen), (name, seen)
    assert {"event": "streamEnded", "data": {"session_id": session_id, "reason": "revoked"}} in frames["playing"]
    assert idle.ws.close_reason == 1008 and playing.ws.close_reason == 1008
    ended = session_row(session_id)
    assert ended["status"] == "ended" and ended["reason"] == "revoked", ended
    assert ended["billed_ms"] == settled["billed_ms"] and ended["charged"] == ended["billed_ms"] * 100, ended
    assert client.get("/api/v1/auth/profile", headers=bearer(who["access_token"])).status_code == 401
    check = runner.invoke(args=["ledger", "check"])
    assert check.exit_code == 0, check.output


def test_media_stuck_in_processing_after_its_job_was_lost_is_queued_again(
    app, client, redis_server, dyno_env, long_video
):
    creator = register(client, role="creator")
    reply = upload(client, creator, long_video, price_per_second=PRICE)
    assert reply.status_code == 201, reply.json
    redis_server.restart()  # its processing job goes with the queue

    env = dyno_env(MEDIA_JOB_TIMEOUT=2, MEDIA_SWEEP_INTERVAL_SECONDS=1)
    item = f"/api/v1/content/{reply.json['id']}"
    with Dyno("clock", **env) as clock, Dyno("worker", **env) as worker:
        ready = wait_for(
            lambda: client.get(item, headers=bearer(creator["access_token"])).json["status"] == "ready", 30
        )
        assert ready, clock.log() + worker.log()


def test_a_postgresql_connection_killed_mid_request_is_a_503_and_the_pool_recovers(app, client, dyno_env, viewer):
    token = viewer("1")["access_token"]
    database = make_url(os.environ["DATABASE_URL"]).database
    with web(dyno_env()) as base:
        assert http(f"{base}/api/v1/auth/profile", token)[0] == 200  # the pool holds a connection
        with psql() as blocker:
            blocker.execute("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
            answers = []
            asking = threading.Thread(target=lambda: answers.append(http(f"{base}/api/v1/auth/profile", token)))
            asking.start()
            with psql("postgres") as admin:
                assert wait_for(lambda: waits_for_a_lock(admin, database), 10), "the request never reached PostgreSQL"
                admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = %s AND wait_event_type = 'Lock'",
                    (database,),
                )
                assert admin.fetchone()[0] >= 1
            blocker.execute("ROLLBACK")
            asking.join(20)
        status, body, headers = answers[0]
        assert status == 503 and body["code"] == 503 and body["errors"] == {"dependency": "database"}, body
        assert int(headers["Retry-After"]) > 0
        assert http(f"{base}/api/v1/auth/profile", token)[0] == 200  # the pool recovered


def test_while_postgresql_is_unreachable_requests_get_503_and_it_recovers(app, client, dyno_env, movie, viewer):
    token = viewer("10")["access_token"]
    server = make_url(os.environ["DATABASE_URL"])
    with TcpCut((server.host, server.port or 5432)) as cut:
        env = dyno_env(DATABASE_URL=cut.url_for(os.environ["DATABASE_URL"]))
        with web(env) as base:
            player = Player(base.replace("http", "ws"), token)
            try:
                session_id = player.call("startStream", content_id=movie["id"])["data"]["session_id"]
                pushes_arrive(base, client)
                cut.cut()
                status, body, headers = http(f"{base}/api/v1/auth/profile", token)
                assert status == 503 and body["errors"] == {"dependency": "database"}, body
                assert int(headers["Retry-After"]) > 0
                status, body, _ = http(f"{base}/readyz")
                assert status == 503 and body["errors"]["checks"]["database"] == "unavailable", body
                # A heartbeat needs only Redis: it still bills. What needs the database says so.
                assert player.call("heartbeat", session_id=session_id)["event"] == "heartbeat"
                started = player.call("startStream", content_id=movie["id"])
                assert started["event"] == "error" and started["data"]["code"] == "unavailable", started

                cut.mend()
                assert http(f"{base}/api/v1/auth/profile", token)[0] == 200  # the first request after it returns
                assert http(f"{base}/readyz")[0] == 200
                assert player.call("stopStream", session_id=session_id)["event"] == "stopStream"
            finally:
                player.close()
