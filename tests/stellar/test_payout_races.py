"""Payout runs that meet: the clock's, an operator's, a retried job's. Each creator is paid once on chain.

Payments are counted on the network's side (the Horizon stand-in), never taken from the app's word.
"""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
from sqlalchemy import text
from stellar_sdk import FeeBumpTransactionEnvelope, Operation, TransactionEnvelope

from tests.stellar.conftest import XLM
from tests.stellar.test_payouts import check, run


def reconcile(runner) -> dict:
    result = runner.invoke(args=["stellar", "reconcile"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def payments_on_chain(horizon) -> Counter:
    """(destination, stroops) of every successful payment out of custody, as the network recorded it."""
    got: Counter = Counter()
    for tx_hash in horizon.applied:
        record = horizon.transaction(tx_hash)
        if not record["successful"]:
            continue
        xdr = record["envelope_xdr"]
        if FeeBumpTransactionEnvelope.is_fee_bump_transaction_envelope(xdr):
            tx = FeeBumpTransactionEnvelope.from_xdr(xdr, horizon.network_passphrase).transaction
            tx = tx.inner_transaction_envelope.transaction
        else:
            tx = TransactionEnvelope.from_xdr(xdr, horizon.network_passphrase).transaction
        for op in tx.operations:
            got[(op.destination.account_id, Operation.to_xdr_amount(op.amount))] += 1
    return got


def payments_to(horizon, keypairs) -> dict[str, int]:
    """How many payments each address received from custody, per the network's own records."""
    counts = dict.fromkeys((k.public_key for k in keypairs), 0)
    for (destination, _), n in payments_on_chain(horizon).items():
        if destination in counts:
            counts[destination] += n
    return counts


def finish(process, timeout: float = 60) -> str:
    out, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, out
    return out


def test_a_run_that_meets_a_run_in_its_sequence_lookup_leaves_the_batch_to_it(
    client, runner, horizon, paid_creator, custody, flask_process
):
    """The interleaving that paid a batch twice: run A's sequence lookup is slow while run B starts."""
    creators = [paid_creator(3 * XLM) for _ in range(3)]
    gate = horizon.hold("GET", f"/accounts/{custody.public_key}")
    first = flask_process("payouts", "run", STELLAR_TIMEOUT="90")  # it waits for Horizon as long as it takes
    assert gate.reached.wait(30), "the first run never looked its sequence up"
    second = finish(flask_process("payouts", "run"))
    assert "another run holds it" in second
    assert horizon.submitted == []  # the second run sent nothing for a batch it does not hold
    gate.release()
    finish(first)
    assert payments_to(horizon, [k for _, k in creators]) == {k.public_key: 1 for _, k in creators}
    assert run(runner)["paid"] == 3
    assert reconcile(runner)["ok"] is True
    check(runner)


def test_a_run_past_its_lease_records_nothing_once_another_took_over(
    client, runner, horizon, paid_creator, custody, flask_process
):
    """Run A stalls in its lookup past its lease; run B takes the batch over and pays. A must not pay again."""
    creators = [paid_creator(2 * XLM) for _ in range(2)]
    gate = horizon.hold("GET", f"/accounts/{custody.public_key}")
    stalled = flask_process("payouts", "run", PAYOUT_LEASE_SECONDS="1", STELLAR_TIMEOUT="90")
    assert gate.reached.wait(30)
    time.sleep(1.5)  # A's lease runs out while it waits
    finish(flask_process("payouts", "run", PAYOUT_LEASE_SECONDS="1"))
    assert len(horizon.applied) == 1  # B built, sent and confirmed the batch
    gate.release()  # A now sees the sequence B used, and would build on the next one
    out = finish(stalled)
    assert "another run holds it" in out
    assert len(horizon.applied) == 1 and len(set(horizon.submitted)) == 1
    assert payments_to(horizon, [k for _, k in creators]) == {k.public_key: 1 for _, k in creators}
    assert reconcile(runner)["ok"] is True
    check(runner)


@pytest.mark.parametrize("runs", [2, 5])
def test_concurrent_runs_pay_each_creator_once(client, runner, horizon, paid_creator, flask_process, runs):
    creators = [paid_creator(2 * XLM + i) for i in range(120)]  # two batches
    horizon.fail_next("slow", seconds=1)  # the first submission lingers while the others arrive
    processes = [flask_process("payouts", "run") for _ in range(runs)]
    outputs = [finish(p, timeout=120) for p in processes]
    assert all(json.loads(out.splitlines()[-1]) for out in outputs)
    for _ in range(3):  # whatever was left waiting, later runs settle
        run(runner)
    counts = payments_to(horizon, [k for _, k in creators])
    assert set(counts.values()) == {1}, {k: n for k, n in counts.items() if n != 1}
    summary = run(runner)
    assert summary["paid"] == 120 and summary["in_flight"] == 0 and summary["open_batches"] == 0
    assert reconcile(runner)["payouts_matched"] == 120
    check(runner)


def test_no_transaction_is_open_while_horizon_is_waited_for(
    app, client, runner, horizon, paid_creator, custody, flask_process, db_url
):
    paid_creator(2 * XLM)
    gates = [horizon.hold("GET", f"/accounts/{custody.public_key}"), horizon.hold("POST", "/transactions")]
    process = flask_process("payouts", "run", STELLAR_TIMEOUT="90")
    for gate in gates:
        assert gate.reached.wait(30)
        assert open_transactions(app, db_url) == 0
        gate.release()
    finish(process)
    assert horizon.applied and run(runner)["paid"] == 1


def open_transactions(app, db_url) -> int:
    """Transactions other connections hold open: PostgreSQL's view, or whether SQLite's write lock is free."""
    if db_url.startswith("sqlite"):
        import sqlite3

        connection = sqlite3.connect(db_url.removeprefix("sqlite:///"), timeout=0, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("ROLLBACK")
            return 0
        except sqlite3.OperationalError:
            return 1
        finally:
            connection.close()
    from streampay.extensions import db

    with app.app_context():
        with db.engine.connect() as connection:
            return connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'"
                )
            ).scalar_one()
