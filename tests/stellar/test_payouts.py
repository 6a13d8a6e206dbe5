"""Exactly-once payouts against the Horizon stand-in, whatever fails and whenever."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import bearer
from tests.stellar.conftest import XLM, link_address

pytestmark = pytest.mark.usefixtures("network_mode")
ROOT = Path(__file__).resolve().parents[2]


def run(runner) -> dict:
    result = runner.invoke(args=["payouts", "run"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output.splitlines()[-1])


def earnings(client, who) -> str:
    return client.get("/api/v1/wallet", headers=bearer(who["access_token"])).json["earnings"]


def payouts_of(client, who) -> list[dict]:
    return client.get("/api/v1/payouts", headers=bearer(who["access_token"])).json


def check(runner) -> None:
    result = runner.invoke(args=["ledger", "check"])
    assert result.exit_code == 0, result.output


def test_due_creators_are_paid_in_one_batch(app, client, runner, horizon, paid_creator):
    due = [paid_creator(5 * XLM + i) for i in range(3)]
    below, below_key = paid_creator(XLM // 2)
    from tests.conftest import register

    unlinked = register(client, role="creator")
    from tests.stellar.conftest import give_earnings

    give_earnings(app, unlinked, 9 * XLM)

    summary = run(runner)
    assert summary["paid"] == 3 and summary["open_batches"] == 0
    assert len(horizon.applied) == 1
    for i, (creator, keypair) in enumerate(due):
        assert horizon.balance(keypair.public_key) == XLM + 5 * XLM + i
        assert earnings(client, creator) == "0.0000000"
        [payout] = payouts_of(client, creator)
        assert payout["status"] == "paid" and payout["tx_hash"] == horizon.applied[0] and payout["ledger"]
    assert earnings(client, below) == "0.5000000" and horizon.balance(below_key.public_key) == XLM
    assert earnings(client, unlinked) == "9.0000000"
    run(runner)  # nothing more is due: nothing more is sent
    assert len(horizon.submitted) == 1
    check(runner)


@pytest.mark.parametrize("fault", ["504_after", "504_before", "drop", "drop_after", "429"])
def test_an_unclear_answer_is_resolved_by_hash_and_pays_once(client, runner, horizon, paid_creator, fault):
    creator, keypair = paid_creator(5 * XLM)
    horizon.fail_next(fault)
    first = run(runner)
    assert first["paid"] == 0 and first["in_flight"] == 1 and first["open_batches"] == 1
    assert earnings(client, creator) == "0.0000000"  # in flight, not lost
    second = run(runner)
    assert second["paid"] == 1 and second["open_batches"] == 0
    assert horizon.balance(keypair.public_key) == 6 * XLM
    assert len(horizon.applied) == 1
    assert len(set(horizon.submitted)) == 1  # the same envelope, never a second one
    check(runner)


def test_bad_sequence_waits_for_the_bounds_then_rebuilds(client, runner, horizon, paid_creator):
    creator, keypair = paid_creator(5 * XLM)
    horizon.fail_next("bad_seq", times=2)
    run(runner)
    run(runner)
    assert horizon.balance(keypair.public_key) == XLM and len(set(horizon.submitted)) == 1
    horizon.advance_time(31)  # past the envelope's time bounds, by the network's clock
    summary = run(runner)
    assert summary["paid"] == 1
    assert len(set(horizon.submitted)) == 2 and len(horizon.applied) == 1
    assert horizon.balance(keypair.public_key) == 6 * XLM
    check(runner)


def test_one_bad_recipient_does_not_stop_the_others(client, runner, horizon, paid_creator, network_mode):
    good = [paid_creator(2 * XLM) for _ in range(3)]
    bad, bad_key = paid_creator(3 * XLM, funded=False)  # no such account on the network
    run(runner)
    assert all(horizon.balance(k.public_key) == 3 * XLM for _, k in good)
    # The envelope that landed used the refused one's sequence number: that one can never land.
    assert earnings(client, bad) == "3.0000000"
    [payout] = payouts_of(client, bad)
    assert payout["status"] == "returned" and "op_no_destination" in payout["reason"]
    assert not horizon.account_exists(bad_key.public_key)
    sent = len(horizon.submitted)
    run(runner)  # a refused address is not tried again until it is proven again
    assert len(horizon.submitted) == sent and earnings(client, bad) == "3.0000000"
    horizon.create_account(bad_key.public_key, balance_stroops=XLM)
    link_address(client, bad, bad_key)
    assert run(runner)["paid"] == 4
    assert horizon.balance(bad_key.public_key) == 4 * XLM
    check(runner)


def test_a_recipient_refused_by_fault_is_returned_and_others_paid(client, runner, horizon, paid_creator):
    (one, one_key), (two, two_key) = paid_creator(2 * XLM), paid_creator(2 * XLM)
    horizon.fail_next("no_destination", destination=one_key.public_key)
    run(runner)
    assert horizon.balance(two_key.public_key) == 3 * XLM
    horizon.advance_time(31)
    run(runner)
    assert horizon.balance(one_key.public_key) == XLM
    assert earnings(client, one) == "2.0000000" and earnings(client, two) == "0.0000000"
    # Returned earnings are paid by a later run once the address can receive them.
    run(runner)
    check(runner)


def test_the_worker_killed_mid_submission_recovers_and_pays_once(
    app, client, runner, horizon, paid_creator, flask_process
):
    creator, keypair = paid_creator(5 * XLM)
    horizon.fail_next("slow", seconds=3)  # Horizon applies it, but only after the worker is dead
    worker = flask_process("payouts", "run", PAYOUT_LEASE_SECONDS="3")
    deadline = time.monotonic() + 20
    while not horizon.submitted and time.monotonic() < deadline:
        time.sleep(0.05)
    assert horizon.submitted, "the worker never submitted"
    os.killpg(worker.pid, signal.SIGKILL)  # between submitting and recording the outcome
    worker.wait()
    # The dead run's lease still stands: another run leaves its batch alone, and says so.
    result = runner.invoke(args=["payouts", "run"])
    assert result.exit_code == 0 and "another run holds it" in result.output, result.output
    time.sleep(3.5)  # Horizon applies the envelope, and the lease runs out
    assert len(horizon.applied) == 1
    [payout] = payouts_of(client, creator)
    assert payout["status"] == "in_flight"
    assert run(runner)["paid"] == 1
    assert horizon.balance(keypair.public_key) == 6 * XLM and len(horizon.applied) == 1
    check(runner)


def test_stored_but_never_sent_is_sent_as_stored(client, runner, horizon, paid_creator):
    from streampay.extensions import db
    from streampay.stellar.models import PayoutAttempt

    creator, keypair = paid_creator(5 * XLM)
    horizon.fail_next("drop")  # the envelope never reached Horizon: as if the worker died before sending
    run(runner)
    assert horizon.applied == []
    with client.application.app_context():
        [stored] = db.session.query(PayoutAttempt.tx_hash).all()
    run(runner)
    assert horizon.applied == [stored[0]]
    assert horizon.balance(keypair.public_key) == 6 * XLM


def test_payouts_api_needs_a_token(client):
    assert client.get("/api/v1/payouts").status_code == 401


def test_no_secret_reaches_logs_or_replies(app, client, runner, horizon, paid_creator, custody, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    creator, _ = paid_creator(5 * XLM)
    horizon.fail_next("504_before")
    outputs = [runner.invoke(args=["payouts", "run"]).output for _ in range(2)]
    outputs.append(runner.invoke(args=["stellar", "status"]).output)
    replies = [
        client.get("/api/v1/payouts", headers=bearer(creator["access_token"])).get_data(as_text=True),
        client.get("/api/v1/wallet", headers=bearer(creator["access_token"])).get_data(as_text=True),
    ]
    for text in [caplog.text, *outputs, *replies]:
        assert custody.secret not in text
