"""The whole money path as people live it: deposit on-chain, watch, get paid on-chain, once."""

from __future__ import annotations

import json

from stellar_sdk import Keypair

from tests.conftest import bearer, register
from tests.content.conftest import media_files, media_root, ready_item  # noqa: F401 (fixtures)
from tests.stellar.conftest import XLM, link_address
from tests.streaming.conftest import FakeClock, Player, serve


def test_deposit_watch_and_get_paid_once_even_when_horizon_times_out(
    stellar_app,
    horizon,
    custody,
    media_files,  # noqa: F811
    media_root,  # noqa: F811
):
    clock = FakeClock()
    app = stellar_app(MEDIA_ROOT=media_root)
    app.extensions["streampay.clock"] = clock
    client, runner = app.test_client(), app.test_cli_runner()

    # A creator proves a payout address and publishes a video at 0.05 per second.
    creator = register(client, role="creator")
    payout_key = Keypair.random()
    horizon.create_account(payout_key.public_key, balance_stroops=XLM)
    link_address(client, creator, payout_key)
    movie = ready_item(app, client, creator, media_files["feature"], price_per_second="0.0500000")

    # A viewer deposits 50 XLM on-chain with their memo; the scan credits it once.
    viewer = register(client)
    memo = client.get("/api/v1/wallet", headers=bearer(viewer["access_token"])).json["deposit"]["memo"]
    funder = Keypair.random()
    horizon.create_account(funder.public_key, balance_stroops=100 * XLM)
    horizon.pay_in(funder.public_key, custody.public_key, 50 * XLM, memo=int(memo))
    for _ in range(2):
        assert runner.invoke(args=["deposits", "scan"]).exit_code == 0
    assert client.get("/api/v1/wallet", headers=bearer(viewer["access_token"])).json["balance"] == "50.0000000"

    # The viewer watches 200 seconds: 10 XLM, of which the creator earns 9.
    with serve(app) as url:
        player = Player(url, viewer["access_token"])
        session_id = player.call("startStream", content_id=movie["id"])["data"]["session_id"]
        for _ in range(40):
            clock.advance(5)
            player.call("heartbeat", session_id=session_id)
        assert player.call("stopStream", session_id=session_id)["data"]["charged"] == "10.0000000"
        player.close()
    assert client.get("/api/v1/wallet", headers=bearer(creator["access_token"])).json["earnings"] == "9.0000000"

    # The payout run; Horizon applies the transaction but times out answering.
    horizon.fail_next("504_after")
    first = json.loads(runner.invoke(args=["payouts", "run"]).output)
    assert first["in_flight"] == 1 and first["paid"] == 0
    second = json.loads(runner.invoke(args=["payouts", "run"]).output)
    assert second["paid"] == 1
    [payout] = client.get("/api/v1/payouts", headers=bearer(creator["access_token"])).json
    assert payout["status"] == "paid" and payout["amount"] == "9.0000000"
    assert payout["tx_hash"] in horizon.applied and len(horizon.applied) == 1
    assert horizon.balance(payout_key.public_key) == XLM + 9 * XLM
    assert client.get("/api/v1/wallet", headers=bearer(creator["access_token"])).json["earnings"] == "0.0000000"
    check = runner.invoke(args=["ledger", "check"])
    assert check.exit_code == 0, check.output
