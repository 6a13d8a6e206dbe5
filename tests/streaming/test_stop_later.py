"""A stop that finds every settlement turn of its process taken is answered at once and settled by a job."""

from __future__ import annotations

import os
import threading

import pytest
from sqlalchemy import create_engine, text

from streampay.sandbox.faults import wait_for
from streampay.streaming.service import SETTLEMENTS_AT_ONCE
from tests.conftest import bearer
from tests.content.conftest import run_jobs
from tests.streaming.conftest import stroops

pytestmark = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql")),
    reason="settlements held up on a row lock: PostgreSQL's row locks",
)


@pytest.fixture
def app(app):
    app.config["STOP_SETTLE_WAIT_MS"] = 200
    return app


def fees_row_locked(app):
    """A transaction of another party (an operator's, say) holding the platform's fees row, which every settlement
    updates; yields, then lets it go."""
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    conn = engine.connect()
    conn.execute(text("SELECT id FROM ledger_accounts WHERE kind = 'platform_fees' FOR UPDATE")).one()
    return engine, conn


def test_a_stop_with_no_settlement_turn_free_is_answered_at_once_and_settled_by_a_job(
    app, client, runner, players, movie, funded_viewer, clock
):
    early = players(funded_viewer("10")["access_token"])  # a first settlement makes the platform's fees account
    first = early.call("startStream", content_id=movie["id"])["data"]["session_id"]
    clock.advance(1)
    assert early.call("stopStream", session_id=first)["data"]["success"] is True

    viewers = [funded_viewer("10") for _ in range(SETTLEMENTS_AT_ONCE + 1)]
    sockets = [players(v["access_token"]) for v in viewers]
    sessions = [p.call("startStream", content_id=movie["id"])["data"]["session_id"] for p in sockets]
    clock.advance(7.5)
    for player, session_id in zip(sockets, sessions, strict=True):
        assert player.call("heartbeat", session_id=session_id)["event"] == "heartbeat"
    clock.advance(1.25)

    engine, lock = fees_row_locked(app)
    stuck = []
    try:
        # Every turn taken by a stop that waits on the locked row ...
        for player, session_id in zip(sockets[:-1], sessions[:-1], strict=True):
            stop = threading.Thread(target=lambda p=player, s=session_id: p.call("stopStream", session_id=s))
            stop.start()
            stuck.append(stop)

        def turns_taken():
            with engine.connect() as probe:
                waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = %s"
                return probe.exec_driver_sql(waiting, (engine.url.database,)).scalar() == SETTLEMENTS_AT_ONCE

        assert wait_for(turns_taken, 10)
        # ... the next stop is answered after STOP_SETTLE_WAIT_MS, billed to its own moment, still unsettled.
        stopped = sockets[-1].call("stopStream", session_id=sessions[-1])
        assert stopped["data"] == {"success": True, "duration": 8, "charged": "0.0875000"}, stopped
        row = client.get(f"/api/v1/streaming/sessions/{sessions[-1]}", headers=bearer(viewers[-1]["access_token"]))
        assert row.json["status"] == "active"
    finally:
        lock.rollback()
        lock.close()
        for stop in stuck:
            stop.join(20)
        engine.dispose()

    clock.advance(30)  # the job runs later; the bill stays where the stop put it
    run_jobs(app)
    session = client.get(f"/api/v1/streaming/sessions/{sessions[-1]}", headers=bearer(viewers[-1]["access_token"])).json
    assert session["status"] == "ended" and session["end_reason"] == "stopped", session
    assert session["billed_ms"] == 8750 and session["charged"] == "0.0875000", session
    assert sockets[-1].wait_push("streamEnded")["data"] == {"session_id": sessions[-1], "reason": "stopped"}
    wallet = client.get("/api/v1/wallet", headers=bearer(viewers[-1]["access_token"])).json
    assert stroops(wallet["balance"]) == 10 * 10_000_000 - 875_000 and wallet["held"] == "0.0000000"
    for viewer, session_id in zip(viewers[:-1], sessions[:-1], strict=True):  # the stops that waited: settled too
        done = client.get(f"/api/v1/streaming/sessions/{session_id}", headers=bearer(viewer["access_token"])).json
        assert done["status"] == "ended" and done["charged"] == "0.0875000", done
    run_jobs(app)  # run twice: nothing changes
    check = runner.invoke(args=["ledger", "check"])
    assert check.exit_code == 0, check.output
