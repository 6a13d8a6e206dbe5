"""`flask stellar sandbox` as a newcomer uses it: a local Horizon that deposits reach and payouts land in."""

from __future__ import annotations

import json
import re
import time

from stellar_sdk import Keypair

from tests.conftest import bearer, register
from tests.stellar.conftest import give_earnings, link_address
from tests.test_procfile import free_port


def test_a_deposit_and_a_payout_go_through_the_sandbox(app_factory, flask_process):
    port = free_port()
    sandbox = flask_process("stellar", "sandbox", "--port", str(port), STELLAR_MASTER_SECRET_KEY="")
    lines = []
    deadline = time.monotonic() + 60
    while len(lines) < 6 and time.monotonic() < deadline:
        lines.append(sandbox.stdout.readline())
    settings = dict(re.findall(r"export (\w+)=(\S+)", "".join(lines)))
    assert settings["STELLAR_HORIZON_URL"] == f"http://127.0.0.1:{port}", lines
    app = app_factory(
        STELLAR_NETWORK="testnet",
        STELLAR_HORIZON_URL=settings["STELLAR_HORIZON_URL"],
        STELLAR_FRIENDBOT_URL=settings["STELLAR_FRIENDBOT_URL"],
        STELLAR_MASTER_SECRET_KEY=settings["STELLAR_MASTER_SECRET_KEY"],
        PAYOUT_MIN_AMOUNT="1",
        RATELIMIT_ENABLED=False,
        STELLAR_HOME_DOMAIN="streampay.test",
        STELLAR_WEB_AUTH_DOMAIN="streampay.test",
    )
    client, runner = app.test_client(), app.test_cli_runner()

    viewer = register(client)
    deposit = client.get("/api/v1/wallet", headers=bearer(viewer["access_token"])).json["deposit"]
    paid = runner.invoke(args=["stellar", "pay", deposit["address"], "12.5", "--memo", deposit["memo"]])
    assert paid.exit_code == 0, paid.output
    paid = runner.invoke(args=["stellar", "pay", deposit["muxed_address"], "0.5"])
    assert paid.exit_code == 0, paid.output
    assert json.loads(runner.invoke(args=["deposits", "scan"]).output)["credited"] == 2
    assert client.get("/api/v1/wallet", headers=bearer(viewer["access_token"])).json["balance"] == "13.0000000"

    creator, keypair = register(client, role="creator"), Keypair.random()
    assert runner.invoke(args=["stellar", "fund", keypair.public_key]).exit_code == 0
    link_address(client, creator, keypair)
    give_earnings(app, creator, 30_000_000)
    summary = json.loads(runner.invoke(args=["payouts", "run"]).output.splitlines()[-1])
    assert summary["paid"] == 1, runner.invoke(args=["payouts", "status"]).output
    [payout] = client.get("/api/v1/payouts", headers=bearer(creator["access_token"])).json
    balances = runner.invoke(args=["stellar", "reconcile"])
    assert balances.exit_code == 0, balances.output
    assert payout["status"] == "paid" and payout["tx_hash"]
