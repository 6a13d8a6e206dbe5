"""Settlements across faults: a checkpoint that could not run for a while, one that lands after Redis lost the meter.

The server's clock is the test's (bills to the stroop); PostgreSQL is cut with a forwarder or a row held locked by
the test, Redis is a redis-server of the test's own, killed and started again empty.
"""

from __future__ import annotations

import os
import shutil
import threading

import pytest
from sqlalchemy import make_url

from streampay import close, jobs
from streampay.sandbox.faults import TcpCut, wait_for
from streampay.streaming.jobs import reap
from tests import test_faults as faults
from tests.conftest import bearer, make_app
from tests.content.conftest import run_jobs
from tests.streaming.conftest import FakeClock, Player, listening, serve

# The fault tests' fixtures: a redis-server of the tests' own, the app on it, a ten-minute item, funded viewers.
app, long_video, media_root, movie, redis_server, viewer = (
    faults.app,
    faults.long_video,
    faults.media_root,
    faults.movie,
    faults.redis_server,
    faults.viewer,
)

pytestmark = pytest.mark.skipif(
    not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL") and shutil.which("redis-server")),
    reason="faults are injected into a real PostgreSQL and a redis-server of the test's own",
)
# 20 s held ahead, settled 5 s before it runs out; a player silent for 15 s has gone. 0.01 a second.
TERMS = {"STREAM_WINDOW_SECONDS": 20, "CHECKPOINT_LEAD_SECONDS": 5, "HEARTBEAT_TIMEOUT_SECONDS": 15}


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def streaming(app, redis_server, media_root, clock):
    """The app that plays, on the test's clock; `database_url` points it elsewhere (through a forwarder). What it
    writes is cleaned up with `app`'s database and Redis."""
    made = []

    def build(database_url: str | None = None):
        built = make_app(
            database_url or app.config["SQLALCHEMY_DATABASE_URI"],
            **{"REDIS_URL": redis_server.url(), "MEDIA_ROOT": media_root, "RATELIMIT_ENABLED": False, **TERMS},
        )
        built.extensions["streampay.clock"] = clock
        made.append(built)
        return built

    yield build
    for built in made:
        close(built)


def wallet(client, who) -> dict:
    return client.get("/api/v1/wallet", headers=bearer(who["access_token"])).json


def test_checkpoints_that_could_not_settle_renew_the_window_when_they_can(
    app,
    client,
    runner,
    streaming,
    clock,
    movie,
    viewer,
):
    # A viewer with plenty of money is never told insufficient_funds because settlements were late: once PostgreSQL
    # answers, the play proven meanwhile is held and billed and the next window held, and the stream goes on.
    who = viewer("10")
    server = make_url(os.environ["DATABASE_URL"])
    with TcpCut((server.host, server.port or 5432)) as cut:
        database_url = app.config["SQLALCHEMY_DATABASE_URI"]
        played = streaming(cut.url_for(database_url))
        with serve(played) as url:
            player = Player(url, who["access_token"])
            try:
                session_id = player.call("startStream", content_id=movie["id"])["data"]["session_id"]
                clock.advance(10)
                assert player.call("heartbeat", session_id=session_id)["event"] == "heartbeat"
                # Before it, a heartbeat checks its socket's access in PostgreSQL, and is refused before its stamp.
                listening(played)
                cut.cut()
                for _ in range(3):  # 20 s, 30 s, 40 s: the window's checkpoint falls due and cannot settle
                    clock.advance(10)
                    beat = player.call("heartbeat", session_id=session_id)
                    assert beat["event"] == "error" and beat["data"]["code"] == "unavailable", beat
                cut.mend()
                clock.advance(5)  # 45 s: past the window held at the start, and past one more
                beat = player.call("heartbeat", session_id=session_id)
                assert beat["event"] == "heartbeat", beat
                assert beat["data"]["billed_seconds"] == 45 and beat["data"]["charged"] == "0.4500000", beat
                clock.advance(5)
                assert player.call("heartbeat", session_id=session_id)["data"]["billed_seconds"] == 50
                stopped = player.call("stopStream", session_id=session_id)
                assert stopped["data"] == {"success": True, "duration": 50, "charged": "0.5000000"}, stopped
                ended = player.wait_push("streamEnded")
                assert ended["data"] == {"session_id": session_id, "reason": "stopped"}
            finally:
                player.close()
    assert wallet(client, who)["balance"] == "9.5000000" and wallet(client, who)["held"] == "0.0000000"
    check = runner.invoke(args=["ledger", "check"])
    assert check.exit_code == 0, check.output


def test_a_settlement_that_lands_after_redis_lost_the_meter_leaves_the_session_playable_and_reapable(
    app,
    client,
    runner,
    streaming,
    clock,
    redis_server,
    movie,
    viewer,
):
    # The checkpoint waits for its row while Redis is killed and comes back empty, then commits and writes the new
    # window to the meter: the meter is gone, so nothing may be written (a husk no heartbeat, rebuild or reaper
    # could use); the next heartbeat rebuilds it from PostgreSQL, and a player that vanishes is reaped.
    who = viewer("10")
    played = streaming()
    database = make_url(os.environ["DATABASE_URL"]).database
    with serve(played) as url:
        player = Player(url, who["access_token"])
        try:
            session_id = player.call("startStream", content_id=movie["id"])["data"]["session_id"]
            clock.advance(10)
            assert player.call("heartbeat", session_id=session_id)["event"] == "heartbeat"
            replies = []
            with faults.psql() as blocker, faults.psql("postgres") as admin:
                blocker.execute("BEGIN")
                blocker.execute("SELECT 1 FROM streaming_sessions WHERE id = %s FOR UPDATE", (session_id,))
                clock.advance(6)  # 16 s: the checkpoint falls due, and waits for the row
                beating = threading.Thread(
                    target=lambda: replies.append(player.call("heartbeat", session_id=session_id))
                )
                beating.start()
                waiting = wait_for(lambda: faults.waits_for_a_lock(admin, database), 10)
                assert waiting, "the checkpoint never waited for the row"
                redis_server.restart()  # kill -9, back empty
                blocker.execute("ROLLBACK")
                beating.join(20)
            assert replies and replies[0]["event"] in ("heartbeat", "error"), replies
            settled = faults.session_row(session_id)
            assert settled["status"] == "active" and settled["billed_ms"] == 16_000, settled

            clock.advance(4)  # 20 s: the meter is rebuilt from the checkpoint, and play goes on
            beat = player.call("heartbeat", session_id=session_id)
            assert beat["event"] == "heartbeat", beat
            assert beat["data"]["billed_seconds"] == 16 and beat["data"]["charged"] == "0.1600000", beat
        finally:
            player.close()  # and the player vanishes

    clock.advance(16)
    with played.app_context():
        jobs.enqueue(reap, queue_name="high")
    run_jobs(played)
    reaped = faults.session_row(session_id)
    assert reaped["status"] == "ended" and reaped["reason"] == "timeout", reaped
    assert reaped["billed_ms"] == 16_000 and reaped["charged"] == 1_600_000, reaped
    assert wallet(client, who)["balance"] == "9.8400000" and wallet(client, who)["held"] == "0.0000000"
    check = runner.invoke(args=["ledger", "check"])
    assert check.exit_code == 0, check.output
