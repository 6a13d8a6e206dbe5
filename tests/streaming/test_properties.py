"""Random sequences of credits, streams, heartbeats, stops and silences keep the books right."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streampay import money
from streampay.streaming.billing import charge_for, fee_for
from tests.conftest import bearer, register
from tests.content.conftest import run_jobs
from tests.streaming.conftest import Player, stroops
from tests.streaming.test_billing import enqueue_reaper

PRICE = 100_000  # the movie fixture: 0.0100000 per second

actions = st.lists(
    st.one_of(
        st.tuples(st.just("credit"), st.integers(0, 1), st.integers(1, 30_000_000)),
        st.tuples(st.just("start"), st.integers(0, 1), st.none()),
        st.tuples(st.just("beat"), st.integers(0, 3), st.integers(0, 20_000)),
        st.tuples(st.just("stop"), st.integers(0, 3), st.integers(0, 20_000)),
        st.tuples(st.just("silence"), st.none(), st.integers(0, 40_000)),
    ),
    min_size=1,
    max_size=14,
)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(steps=actions)
def test_the_ledger_invariant_holds_for_any_sequence(app, client, runner, server, movie, clock, steps):
    viewers = [register(client), register(client)]
    players = [Player(server, v["access_token"]) for v in viewers]
    sessions: list[dict] = []  # {"id", "viewer", "start", "last_proof"}
    try:
        for action, who, amount in steps:
            if action == "credit":
                email = viewers[who]["user"]["email"]
                credit = runner.invoke(args=["wallet", "credit", email, money.format(amount), "--reason", "p"])
                assert credit.exit_code == 0, credit.output
            elif action == "start":
                reply = players[who].call("startStream", content_id=movie["id"])
                if reply["event"] == "startStream":
                    sessions.append(
                        {"id": reply["data"]["session_id"], "viewer": who, "start": clock.now, "last_proof": clock.now}
                    )
            elif action in ("beat", "stop") and sessions:
                s = sessions[who % len(sessions)]
                clock.now += amount
                reply = players[s["viewer"]].call("heartbeat" if action == "beat" else "stopStream", session_id=s["id"])
                if reply["event"] != "error" and clock.now - s["last_proof"] <= 15_000:
                    s["last_proof"] = clock.now
            elif action == "silence":
                clock.now += amount
                enqueue_reaper(app)
                run_jobs(app)
        # Close whatever is still open, as the reaper would after the players vanish.
        clock.now += 60_000
        enqueue_reaper(app)
        run_jobs(app)

        check = runner.invoke(args=["ledger", "check"])
        assert check.exit_code == 0, check.output
        for s in sessions:
            viewer = viewers[s["viewer"]]
            got = client.get(f"/api/v1/streaming/sessions/{s['id']}", headers=bearer(viewer["access_token"])).json
            assert got["status"] == "ended" and got["held"] == "0.0000000"
            # Never billed past the last proof of play, and every stroop accounted for.
            assert got["billed_ms"] <= s["last_proof"] - s["start"]
            assert stroops(got["charged"]) == charge_for(got["billed_ms"], PRICE)
            assert stroops(got["fee"]) == fee_for(stroops(got["charged"]), 1000)
        for viewer in viewers:
            wallet = client.get("/api/v1/wallet", headers=bearer(viewer["access_token"])).json
            assert stroops(wallet["balance"]) >= 0 and wallet["held"] == "0.0000000"
    finally:
        for p in players:
            p.close()
