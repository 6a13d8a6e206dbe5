"""Every row of the result-code table (docs/stellar.md), and the refusals the network makes by itself.

Each code is answered by the Horizon stand-in to a real submission; what the engine does next is read
from the network (payments on chain) and from the API (payout status, refusal, earnings).
"""

from __future__ import annotations

import pytest

from streampay.stellar.outcomes import OP_ACTIONS, TX_ACTIONS, Action
from tests.conftest import bearer
from tests.stellar.conftest import XLM, link_address, make_creator
from tests.stellar.test_payout_races import payments_to, reconcile
from tests.stellar.test_payouts import check, earnings, payouts_of, run

ROWS = [("transaction", code, action) for code, action in TX_ACTIONS.items()] + [
    ("operation", code, action) for code, action in OP_ACTIONS.items()
]


@pytest.mark.parametrize(("field", "code", "action"), ROWS, ids=[code for _, code, _ in ROWS])
def test_each_result_code_is_read_as_the_table_says(stellar_app, horizon, field, code, action):
    fee_bump = ROWS.index((field, code, action)) % 2 == 1  # every other row through a fee bump
    app = stellar_app(STELLAR_FEE_BUMP=fee_bump)
    client, runner = app.test_client(), app.test_cli_runner()
    creators = [make_creator(app, client, horizon, 2 * XLM) for _ in range(2)]
    keys = [k for _, k in creators]
    repeat = 2 if action in (Action.RETRY, Action.WAIT) else 1
    horizon.fail_next("result", times=repeat, **{field: code})

    if action in (Action.RETRY, Action.WAIT):
        for _ in range(repeat):
            assert run(runner)["in_flight"] == 2
        assert len(set(horizon.submitted)) == 1  # the same envelope again, nothing new while it might land
        horizon.advance_time(31)
        assert run(runner)["paid"] == 2
        assert len(set(horizon.submitted)) == 2
    elif action is Action.REFUSE_RECIPIENT:
        run(runner)
        statuses = sorted(payouts_of(client, c)[0]["status"] for c, _ in creators)
        assert statuses == ["paid", "returned"]  # the other went at once, on the same sequence number
        refused, refused_key = next((c, k) for c, k in creators if payouts_of(client, c)[0]["status"] == "returned")
        [payout] = payouts_of(client, refused)
        assert payout["refusal"] == "recipient" and code in payout["reason"]
        assert earnings(client, refused) == "2.0000000"
        sent = len(horizon.submitted)
        run(runner)  # waits for the address to be proven again
        assert len(horizon.submitted) == sent
        link_address(client, refused, refused_key)
        assert run(runner)["paid"] == 2
    else:
        first = run(runner)
        assert first["refused"] == 2 and first["paid"] == 0
        for creator, _ in creators:
            [payout] = payouts_of(client, creator)
            assert payout["refusal"] == "batch" and code in payout["reason"]
        run(runner)  # its envelope may still land until its bounds pass: nothing new is sent
        assert len(set(horizon.submitted)) == 1
        horizon.advance_time(31)
        run(runner)  # the envelope is dead: earnings go back, and the creators stay due
        assert all(earnings(client, c) == "2.0000000" for c, _ in creators)
        assert run(runner)["paid"] == 2
        assert [p["status"] for p in payouts_of(client, creators[0][0])] == ["paid", "returned"]
    assert payments_to(horizon, keys) == {k.public_key: 1 for k in keys}
    assert reconcile(runner)["ok"] is True
    check(runner)


@pytest.mark.usefixtures("network_mode")
def test_a_fee_bumped_batch_pays_all_but_the_recipient_without_an_account(stellar_app, horizon):
    app = stellar_app(STELLAR_FEE_BUMP=True)
    client, runner = app.test_client(), app.test_cli_runner()
    good = [make_creator(app, client, horizon, 3 * XLM) for _ in range(3)]
    missing = make_creator(app, client, horizon, 3 * XLM, funded=False)
    summary = run(runner)
    assert summary["paid"] == 3 and summary["open_batches"] == 0
    assert all(horizon.balance(k.public_key) == 4 * XLM for _, k in good)
    [payout] = payouts_of(client, missing[0])
    assert payout["status"] == "returned" and payout["refusal"] == "recipient"
    assert "op_no_destination" in payout["reason"]
    sent = len(horizon.submitted)
    run(runner)
    assert len(horizon.submitted) == sent  # no failing envelope, and no fee, for every later run
    horizon.create_account(missing[1].public_key, balance_stroops=XLM)
    link_address(client, missing[0], missing[1])
    assert run(runner)["paid"] == 4
    assert payments_to(horizon, [k for _, k in [*good, missing]]) == {k.public_key: 1 for _, k in [*good, missing]}
    assert reconcile(runner)["ok"] is True
    check(runner)


@pytest.mark.usefixtures("network_mode")
@pytest.mark.parametrize("fee_bump", [False, True])
@pytest.mark.parametrize("custody_funding", [7 * XLM])
def test_custody_short_once_then_funded_pays_everyone_once(stellar_app, horizon, custody, fee_bump):
    app = stellar_app(STELLAR_FEE_BUMP=fee_bump)
    client, runner = app.test_client(), app.test_cli_runner()
    creators = [make_creator(app, client, horizon, 5 * XLM) for _ in range(2)]
    run(runner)  # 10 XLM due, 7 held: op_underfunded, the whole batch refused
    for creator, _ in creators:
        [payout] = payouts_of(client, creator)
        assert payout["status"] in ("refused", "returned") and payout["refusal"] == "batch"
        assert "op_underfunded" in payout["reason"]
    horizon.fund(custody.public_key, 100 * XLM)  # the operator tops custody up
    horizon.advance_time(31)
    run(runner)
    assert run(runner)["paid"] == 2
    assert all(earnings(client, c) == "0.0000000" for c, _ in creators)
    keys = [k for _, k in creators]
    assert payments_to(horizon, keys) == {k.public_key: 1 for k in keys}
    status = runner.invoke(args=["payouts", "status"])
    assert status.exit_code == 0 and "op_underfunded" in status.output
    assert runner.invoke(args=["deposits", "scan"]).exit_code == 0  # the top-up is an unmatched deposit
    assert reconcile(runner)["ok"] is True
    check(runner)


def test_reconcile_finds_a_payment_the_ledger_does_not_know(app, client, runner, horizon, paid_creator, custody):
    app.config["METRICS_TOKEN"] = "scrape"
    assert "streampay_reconcile_ok" not in scrape(client)  # never reconciled: nothing to say yet
    creator, keypair = paid_creator(2 * XLM)
    assert run(runner)["paid"] == 1
    assert reconcile(runner)["payouts_matched"] == 1
    clean = scrape(client)
    assert "streampay_reconcile_ok 1.0" in clean
    assert 'streampay_reconcile_difference_stroops{check="ledger_vs_network"} 0.0' in clean
    assert 'streampay_reconcile_difference_stroops{check="chain_vs_history"} 0.0' in clean
    assert 'streampay_reconcile_mismatches{kind="unknown_payments"} 0.0' in clean
    horizon.pay_in(custody.public_key, keypair.public_key, 2 * XLM)  # the same creator paid a second time
    result = runner.invoke(args=["stellar", "reconcile"])
    assert result.exit_code == 1
    assert "1 payment(s) the ledger does not know" in result.output
    assert keypair.public_key in result.output
    alarm = scrape(client)  # what an operator's alert reads
    assert "streampay_reconcile_ok 0.0" in alarm
    assert 'streampay_reconcile_mismatches{kind="unknown_payments"} 1.0' in alarm
    assert "streampay_reconcile_last_run_timestamp_seconds " in alarm


def scrape(client) -> str:
    reply = client.get("/metrics", headers=bearer("scrape"))
    assert reply.status_code == 200
    return reply.get_data(as_text=True)


def test_payouts_show_why_they_went_back(client, runner, horizon, paid_creator):
    creator, _ = paid_creator(2 * XLM, funded=False)
    run(runner)
    reply = client.get("/api/v1/payouts", headers=bearer(creator["access_token"]))
    assert reply.status_code == 200
    [payout] = reply.json
    assert payout["refusal"] == "recipient" and "op_no_destination" in payout["reason"]
    status = runner.invoke(args=["payouts", "status"])
    assert status.exit_code == 0
    assert creator["user"]["email"] in status.output and "waiting_for_address_proof" in status.output
