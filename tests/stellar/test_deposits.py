from __future__ import annotations

import json

from stellar_sdk import Asset, Keypair, MuxedAccount

from tests.conftest import bearer, register
from tests.content.conftest import run_jobs
from tests.stellar.conftest import XLM


def wallet(client, who) -> dict:
    return client.get("/api/v1/wallet", headers=bearer(who["access_token"])).json


def scan(runner) -> dict:
    result = runner.invoke(args=["deposits", "scan"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_deposits_by_memo_and_by_muxed_address_are_credited_once(client, runner, horizon, custody):
    alice, bob = register(client), register(client)
    sender = Keypair.random()
    horizon.create_account(sender.public_key, balance_stroops=1000 * XLM)
    deposit = wallet(client, alice)["deposit"]
    assert deposit["address"] == custody.public_key
    horizon.pay_in(sender.public_key, custody.public_key, 25 * XLM, memo=int(deposit["memo"]))
    muxed = wallet(client, bob)["deposit"]["muxed_address"]
    assert MuxedAccount.from_account(muxed).account_id == custody.public_key
    horizon.pay_in(sender.public_key, muxed, 12_345_678)

    assert scan(runner)["credited"] == 2
    assert wallet(client, alice)["balance"] == "25.0000000"
    assert wallet(client, bob)["balance"] == "1.2345678"
    assert scan(runner)["credited"] == 0  # the cursor moved on
    assert wallet(client, alice)["balance"] == "25.0000000"
    entries = client.get("/api/v1/wallet/ledger", headers=bearer(alice["access_token"])).json
    assert [(e["kind"], e["amount"]) for e in entries] == [("deposit", "25.0000000")]
    assert runner.invoke(args=["ledger", "check"]).exit_code == 0


def test_a_replayed_scan_from_the_start_credits_nothing_twice(app, client, runner, horizon, custody):
    from sqlalchemy import text

    from streampay.extensions import db

    alice = register(client)
    sender = Keypair.random()
    horizon.create_account(sender.public_key, balance_stroops=1000 * XLM)
    horizon.pay_in(sender.public_key, custody.public_key, 3 * XLM, memo=wallet(client, alice)["deposit"]["memo"])
    scan(runner)
    with app.app_context():  # forget where the scan was: it reads every payment again
        db.session.execute(text("DELETE FROM stellar_cursors"))
        db.session.commit()
    assert scan(runner)["credited"] == 0
    assert wallet(client, alice)["balance"] == "3.0000000"


def test_unknown_memo_goes_to_unmatched_until_an_admin_assigns_it(client, runner, horizon, custody):
    alice = register(client)
    sender = Keypair.random()
    horizon.create_account(sender.public_key, balance_stroops=1000 * XLM)
    op_id = horizon.pay_in(sender.public_key, custody.public_key, 7 * XLM, memo="who am I")
    horizon.pay_in(sender.public_key, custody.public_key, 1 * XLM, memo=987654321)
    assert scan(runner)["unmatched"] == 2
    assert wallet(client, alice)["balance"] == "0.0000000"
    assigned = runner.invoke(args=["deposits", "assign", op_id, alice["user"]["email"]])
    assert assigned.exit_code == 0, assigned.output
    assert wallet(client, alice)["balance"] == "7.0000000"
    again = runner.invoke(args=["deposits", "assign", op_id, alice["user"]["email"]])
    assert again.exit_code != 0 and "assigned, not unmatched" in again.output
    assert runner.invoke(args=["deposits", "assign", "nope", alice["user"]["email"]]).exit_code != 0
    assert runner.invoke(args=["ledger", "check"]).exit_code == 0


def test_other_assets_failed_and_outgoing_payments_are_ignored(app, client, runner, horizon, custody):
    alice = register(client)
    memo = int(wallet(client, alice)["deposit"]["memo"])
    issuer, sender = Keypair.random(), Keypair.random()
    horizon.create_account(issuer.public_key)
    horizon.create_account(sender.public_key, balance_stroops=1000 * XLM)
    horizon.add_trustline(custody.public_key, "USDC", issuer.public_key)
    horizon.add_trustline(sender.public_key, "USDC", issuer.public_key, balance_stroops=100 * XLM)
    horizon.pay_in(sender.public_key, custody.public_key, 5 * XLM, memo=memo, asset=Asset("USDC", issuer.public_key))
    horizon.pay_in(sender.public_key, custody.public_key, 5 * XLM, memo=memo, successful=False)
    horizon.pay_in(custody.public_key, sender.public_key, 2 * XLM, memo=memo)
    counts = scan(runner)
    assert counts["credited"] == 0 and counts["unmatched"] == 0
    assert wallet(client, alice)["balance"] == "0.0000000"


def test_the_periodic_job_scans_too(app, client, horizon, custody):
    from streampay import jobs
    from streampay.stellar.jobs import scan_deposits

    alice = register(client)
    sender = Keypair.random()
    horizon.create_account(sender.public_key, balance_stroops=1000 * XLM)
    horizon.pay_in(sender.public_key, custody.public_key, 4 * XLM, memo=wallet(client, alice)["deposit"]["memo"])
    with app.app_context():
        jobs.enqueue(scan_deposits)
    run_jobs(app)
    assert wallet(client, alice)["balance"] == "4.0000000"


def test_horizon_down_loses_nothing(client, runner, horizon, custody):
    alice = register(client)
    sender = Keypair.random()
    horizon.create_account(sender.public_key, balance_stroops=1000 * XLM)
    horizon.pay_in(sender.public_key, custody.public_key, 2 * XLM, memo=wallet(client, alice)["deposit"]["memo"])
    horizon.down = True
    failed = runner.invoke(args=["deposits", "scan"])
    assert failed.exit_code != 0 and "Horizon" in failed.output
    horizon.down = False
    assert scan(runner)["credited"] == 1
    assert wallet(client, alice)["balance"] == "2.0000000"
