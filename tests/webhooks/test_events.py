"""The events as an integrator lives them: a creator's receiver hears a stream end and a payout land,
once each, signed, though it was down for a while; the viewer's hears the deposit; an admin's hears
the deposit nobody claimed."""

from __future__ import annotations

import json

from stellar_sdk import Keypair

from tests.conftest import bearer, register
from tests.content.conftest import media_files, media_root, ready_item  # noqa: F401 (fixtures)
from tests.stellar.conftest import XLM, custody, custody_funding, horizon, link_address, stellar_app  # noqa: F401
from tests.streaming.conftest import FakeClock, Player, serve
from tests.webhooks.conftest import FAST, add_endpoint, deliveries, run_jobs
from tests.webhooks.receiver import Receiver


def test_stream_and_payout_reach_the_creator_once_each(
    stellar_app,  # noqa: F811
    horizon,  # noqa: F811
    custody,  # noqa: F811
    media_files,  # noqa: F811
    media_root,  # noqa: F811
    make_admin,
):
    clock = FakeClock()
    app = stellar_app(MEDIA_ROOT=media_root, **FAST)
    app.extensions["streampay.clock"] = clock
    client, runner = app.test_client(), app.test_cli_runner()
    with Receiver() as creator_hooks, Receiver() as viewer_hooks, Receiver() as admin_hooks:
        creator = register(client, role="creator")
        hook = add_endpoint(
            client, creator, creator_hooks, "session.ended", "payout.paid", "payout.refused", "content.ready"
        )
        payout_key = Keypair.random()
        horizon.create_account(payout_key.public_key, balance_stroops=XLM)
        link_address(client, creator, payout_key)
        movie = ready_item(app, client, creator, media_files["feature"], price_per_second="0.1000000")

        viewer = register(client)
        add_endpoint(client, viewer, viewer_hooks, "deposit.credited", "session.ended", "payout.paid")
        add_endpoint(client, make_admin(), admin_hooks, "deposit.unmatched", platform=True)
        memo = client.get("/api/v1/wallet", headers=bearer(viewer["access_token"])).json["deposit"]["memo"]
        funder = Keypair.random()
        horizon.create_account(funder.public_key, balance_stroops=100 * XLM)
        horizon.pay_in(funder.public_key, custody.public_key, 50 * XLM, memo=int(memo))
        horizon.pay_in(funder.public_key, custody.public_key, 2 * XLM, memo=999_999_999)
        assert runner.invoke(args=["deposits", "scan"]).exit_code == 0

        creator_hooks.answers = [500, 503, 500]  # the creator's receiver is down for a while
        with serve(app) as url:
            player = Player(url, viewer["access_token"])
            session_id = player.call("startStream", content_id=movie["id"])["data"]["session_id"]
            for _ in range(8):
                clock.advance(5)
                player.call("heartbeat", session_id=session_id)
            assert player.call("stopStream", session_id=session_id)["data"]["charged"] == "4.0000000"
            player.close()
        assert json.loads(runner.invoke(args=["payouts", "run"]).output)["paid"] == 1
        run_jobs(app)
        run_jobs(app)  # a second pass finds nothing more to send

    assert creator_hooks.rejected == [] and viewer_hooks.rejected == [] and admin_hooks.rejected == []
    [ready] = creator_hooks.of_type("content.ready")
    assert ready["data"]["id"] == movie["id"] and ready["data"]["status"] == "ready"
    [ended] = creator_hooks.of_type("session.ended")
    assert ended["data"]["id"] == session_id and ended["data"]["end_reason"] == "stopped"
    assert ended["data"]["charged"] == "4.0000000" and ended["data"]["status"] == "ended"
    [paid] = creator_hooks.of_type("payout.paid")
    [payout] = client.get("/api/v1/payouts", headers=bearer(creator["access_token"])).json
    assert paid["data"] == payout and payout["amount"] == "3.6000000"
    assert sorted(e["type"] for e in creator_hooks.events.values()) == [
        "content.ready",
        "payout.paid",
        "session.ended",
    ]
    assert sum(creator_hooks.deliveries.values()) == 3 + 3  # three events, three failed attempts among them
    log = deliveries(client, creator, hook)
    assert {d["status"] for d in log} == {"succeeded"} and sum(d["attempts"] for d in log) == 6

    # The viewer hears their deposit and their session, not the creator's payout; the admin the stray deposit.
    assert sorted(e["type"] for e in viewer_hooks.events.values()) == ["deposit.credited", "session.ended"]
    [credited] = viewer_hooks.of_type("deposit.credited")
    assert credited["data"]["amount"] == "50.0000000" and credited["data"]["status"] == "credited"
    [stray] = admin_hooks.of_type("deposit.unmatched")
    assert stray["data"]["amount"] == "2.0000000" and stray["data"]["user_id"] is None
