"""Bills to the stroop, on the server's clock, through a real WebSocket."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from sqlalchemy import text

from streampay.extensions import db
from tests.conftest import bearer, register
from tests.content.conftest import ready_item, run_jobs
from tests.streaming.conftest import Player, beat_concurrently, serve, stroops


def wallet(client, who) -> dict:
    return client.get("/api/v1/wallet", headers=bearer(who["access_token"])).json


def test_a_stream_moves_exactly_the_right_stroops(app, client, runner, players, movie, creator, funded_viewer, clock):
    viewer = funded_viewer("10")
    player = players(viewer["access_token"])
    started = player.call("startStream", content_id=movie["id"])
    assert started["event"] == "startStream"
    assert started["data"]["price_per_second"] == "0.0100000"
    assert started["data"]["balance"] == "10.0000000"
    session_id = started["data"]["session_id"]
    assert wallet(client, viewer)["held"] == "0.6000000"  # one 60 s window at 0.01/s

    for _ in range(24):  # two minutes of heartbeats, every 5 s; crosses two checkpoints
        clock.advance(5)
        beat = player.call("heartbeat", session_id=session_id, position=99999)
    assert beat["data"]["billed_seconds"] == 120
    assert beat["data"]["charged"] == "1.2000000"

    clock.advance(3.25)
    stopped = player.call("stopStream", session_id=session_id)
    assert stopped["data"] == {"success": True, "duration": 123, "charged": "1.2325000"}

    # 123.25 s at 100,000 stroops/s = 12,325,000 stroops; 10% fee = 1,232,500; creator gets the rest.
    assert wallet(client, viewer) | {"deposit": None} == {
        "balance": "8.7675000",
        "held": "0.0000000",
        "available": "8.7675000",
        "earnings": "0.0000000",
        "deposit": None,
    }
    assert wallet(client, creator)["earnings"] == "1.1092500"
    check = runner.invoke(args=["ledger", "check"])
    assert check.exit_code == 0, check.output
    session = client.get(f"/api/v1/streaming/sessions/{session_id}", headers=bearer(viewer["access_token"])).json
    assert session["status"] == "ended" and session["end_reason"] == "stopped"
    assert session["billed_ms"] == 123_250 and session["charged"] == "1.2325000" and session["fee"] == "0.1232500"


def test_a_flask_command_counts_what_the_sessions_still_playing_hold(app, players, movie, funded_viewer, tmp_path):
    # `flask ledger check` typed in a shell builds the app without its routes: streaming must still answer it.
    viewer = funded_viewer("10")
    assert players(viewer["access_token"]).call("startStream", content_id=movie["id"])["event"] == "startStream"
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"], INSTANCE_PATH=str(tmp_path), LOG_LEVEL="WARNING")
    flask = str(Path(sys.executable).parent / "flask")
    root = Path(__file__).resolve().parents[2]
    check = subprocess.run([flask, "ledger", "check"], env=env, cwd=root, capture_output=True, text=True)
    assert check.returncode == 0 and "holds match open sessions" in check.stdout, check.stdout + check.stderr


def test_cumulative_rounding_loses_and_invents_nothing(app_factory, media_root, media_files, clock):

    app = app_factory(
        MEDIA_ROOT=media_root,
        STREAM_WINDOW_SECONDS=7,
        STREAM_MIN_SECONDS=1,
        CHECKPOINT_LEAD_SECONDS=3,
        PLATFORM_FEE_BPS=1234,
        HEARTBEAT_TIMEOUT_SECONDS=15,
    )
    app.extensions["streampay.clock"] = clock
    client, runner = app.test_client(), app.test_cli_runner()
    creator = register(client, role="creator")
    item = ready_item(app, client, creator, media_files["feature"], price_per_second="0.0000333")
    viewer = register(client)
    assert runner.invoke(args=["wallet", "credit", viewer["user"]["email"], "1", "--reason", "t"]).exit_code == 0
    with serve(app) as url:
        player = Player(url, viewer["access_token"])
        session_id = player.call("startStream", content_id=item["id"])["data"]["session_id"]
        total_ms = 0
        for step_ms in [1234, 4567, 891, 3999, 2001, 4444, 777, 4321, 4999, 1, 3333] * 3:
            clock.now += step_ms
            total_ms += step_ms
            player.call("heartbeat", session_id=session_id)
        stopped = player.call("stopStream", session_id=session_id)
        player.close()
    charge = total_ms * 333 // 1000
    fee = charge * 1234 // 10_000
    assert stroops(stopped["data"]["charged"]) == charge
    session = client.get(f"/api/v1/streaming/sessions/{session_id}", headers=bearer(viewer["access_token"])).json
    assert session["billed_ms"] == total_ms
    assert stroops(session["fee"]) == fee
    assert session_checkpoints(app, session_id) > 5  # many checkpoints, one exact total
    assert stroops(wallet(client, viewer)["balance"]) == 10_000_000 - charge
    assert stroops(wallet(client, creator)["earnings"]) == charge - fee
    assert runner.invoke(args=["ledger", "check"]).exit_code == 0


def session_checkpoints(app, session_id: str) -> int:
    import uuid

    from streampay.extensions import db
    from streampay.streaming.models import StreamSession

    with app.app_context():
        return db.session.get(StreamSession, uuid.UUID(session_id)).checkpoints


def test_too_little_money_ends_the_stream_with_insufficient_funds(client, runner, players, movie, funded_viewer, clock):
    viewer = funded_viewer("0.3")  # 30 s at 0.01/s
    player = players(viewer["access_token"])
    session_id = player.call("startStream", content_id=movie["id"])["data"]["session_id"]
    assert wallet(client, viewer)["held"] == "0.3000000"
    for _ in range(5):
        clock.advance(5)
        assert player.call("heartbeat", session_id=session_id)["event"] == "heartbeat"
    clock.advance(5)
    last = player.call("heartbeat", session_id=session_id)
    assert last["data"]["billed_seconds"] == 30
    ended = player.wait_push("streamEnded")
    assert ended["data"] == {"session_id": session_id, "reason": "insufficient_funds"}
    assert wallet(client, viewer)["balance"] == "0.0000000"
    clock.advance(5)
    after = player.call("heartbeat", session_id=session_id)
    assert after["event"] == "error" and after["data"]["code"] == "session_not_active"
    assert runner.invoke(args=["ledger", "check"]).exit_code == 0


def test_a_zero_balance_cannot_start(client, players, movie):

    viewer = register(client)
    player = players(viewer["access_token"])
    reply = player.call("startStream", content_id=movie["id"])
    assert reply["event"] == "error" and reply["data"]["code"] == "insufficient_funds"
    assert wallet(client, viewer)["held"] == "0.0000000"


def test_the_spend_cap_ends_the_stream(client, runner, players, movie, funded_viewer, clock):
    viewer = funded_viewer("10")
    player = players(viewer["access_token"])
    session_id = player.call("startStream", content_id=movie["id"], max_spend="0.1500000")["data"]["session_id"]
    assert wallet(client, viewer)["held"] == "0.1500000"
    for _ in range(3):
        clock.advance(5)
        player.call("heartbeat", session_id=session_id)
    clock.advance(5)
    player.call("heartbeat", session_id=session_id)
    assert player.wait_push("streamEnded")["data"]["reason"] == "spend_cap_reached"
    assert wallet(client, viewer)["balance"] == "9.8500000"
    assert runner.invoke(args=["ledger", "check"]).exit_code == 0


def test_a_vanished_player_is_billed_to_its_last_heartbeat_by_the_reaper(
    app, client, runner, players, movie, funded_viewer, clock
):
    viewer = funded_viewer("10")
    player = players(viewer["access_token"])
    session_id = player.call("startStream", content_id=movie["id"])["data"]["session_id"]
    for _ in range(4):
        clock.advance(5)
        player.call("heartbeat", session_id=session_id)
    clock.advance(120)  # the player went silent; its socket is still open
    enqueue_reaper(app)
    run_jobs(app)
    # The reaper ran as a job and told the player through Redis pub/sub.
    assert player.wait_push("streamEnded")["data"] == {"session_id": session_id, "reason": "timeout"}
    session = client.get(f"/api/v1/streaming/sessions/{session_id}", headers=bearer(viewer["access_token"])).json
    assert session["billed_ms"] == 20_000 and session["charged"] == "0.2000000"
    assert session["end_reason"] == "timeout"
    assert wallet(client, viewer) | {"deposit": None} == {
        "balance": "9.8000000",
        "held": "0.0000000",
        "available": "9.8000000",
        "earnings": "0.0000000",
        "deposit": None,
    }
    assert runner.invoke(args=["ledger", "check"]).exit_code == 0


def test_a_closed_socket_is_billed_by_the_reaper_too(app, client, players, movie, funded_viewer, clock):
    viewer = funded_viewer("10")
    player = players(viewer["access_token"])
    session_id = player.call("startStream", content_id=movie["id"])["data"]["session_id"]
    clock.advance(7)
    player.call("heartbeat", session_id=session_id)
    player.close()
    clock.advance(16)
    enqueue_reaper(app)
    run_jobs(app)
    session = client.get(f"/api/v1/streaming/sessions/{session_id}", headers=bearer(viewer["access_token"])).json
    assert session["status"] == "ended" and session["billed_ms"] == 7_000


def enqueue_reaper(app) -> None:
    from streampay import jobs
    from streampay.streaming.jobs import reap

    with app.app_context():
        jobs.enqueue(reap, queue_name="high")


def test_a_late_stop_or_heartbeat_bills_only_to_the_last_heartbeat(client, players, movie, funded_viewer, clock):
    viewer = funded_viewer("10")
    player = players(viewer["access_token"])
    first = player.call("startStream", content_id=movie["id"])["data"]["session_id"]
    clock.advance(5)
    player.call("heartbeat", session_id=first)
    clock.advance(40)  # longer than the 15 s timeout
    stopped = player.call("stopStream", session_id=first)
    assert stopped["data"] == {"success": True, "duration": 5, "charged": "0.0500000"}

    second = player.call("startStream", content_id=movie["id"])["data"]["session_id"]
    clock.advance(4)
    player.call("heartbeat", session_id=second)
    clock.advance(30)
    late = player.call("heartbeat", session_id=second)
    assert late["event"] == "error" and late["data"]["code"] == "session_not_active"
    session = client.get(f"/api/v1/streaming/sessions/{second}", headers=bearer(viewer["access_token"])).json
    assert session["billed_ms"] == 4_000 and session["end_reason"] == "timeout"


def test_balance_low_is_pushed_once(client, players, movie, funded_viewer, clock):
    viewer = funded_viewer("0.5")  # 50 s of runway, under the 30 s warning only after some watching
    player = players(viewer["access_token"])
    session_id = player.call("startStream", content_id=movie["id"])["data"]["session_id"]
    for _ in range(8):
        clock.advance(5)
        player.call("heartbeat", session_id=session_id)
    low = player.wait_push("balanceLow")
    assert low["data"]["session_id"] == session_id and low["data"]["runway_seconds"] < 30
    assert Decimal(low["data"]["balance"]) > 0
    for _ in range(3):
        clock.advance(5)
        player.call("heartbeat", session_id=session_id)
    assert [p for p in player.pushes if p["event"] == "balanceLow"] == []


def test_concurrent_heartbeats_each_read_their_own_meter(client, runner, players, movie, funded_viewer, clock):
    # The sockets of a process share one Redis connection: replies queued behind one another must never cross.
    # Each viewer holds a different amount, so a reply read off another viewer's meter shows a wrong balance.
    sessions = {}
    for credit in range(1, 13):
        viewer = funded_viewer(str(credit))
        player = players(viewer["access_token"])
        sessions[credit] = (player, player.call("startStream", content_id=movie["id"])["data"]["session_id"])
    clock.advance(5)
    for credit, reply in beat_concurrently(sessions, beats=25):
        assert reply["event"] == "heartbeat", reply
        assert reply["data"]["billed_seconds"] == 5 and reply["data"]["charged"] == "0.0500000", reply
        assert stroops(reply["data"]["balance"]) == credit * 10_000_000 - 500_000, (credit, reply)
    for player, session_id in sessions.values():
        assert player.call("stopStream", session_id=session_id)["data"]["charged"] == "0.0500000"
    assert runner.invoke(args=["ledger", "check"]).exit_code == 0


def test_ledger_check_matches_wallet_holds_against_active_sessions(app, runner, players, movie, funded_viewer):
    viewer = funded_viewer()
    players(viewer["access_token"]).call("startStream", content_id=movie["id"])
    assert runner.invoke(args=["ledger", "check"]).exit_code == 0
    with app.app_context():
        db.session.execute(text("UPDATE streaming_sessions SET held = held + 1 WHERE status = 'active'"))
        db.session.commit()
    result = runner.invoke(args=["ledger", "check"])
    assert result.exit_code == 1 and "open sessions hold" in result.output
