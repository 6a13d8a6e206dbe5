"""An operator's afternoon: the clock dyno pays every few seconds, `flask payouts run` fires beside it in a
loop, earnings keep arriving, and Horizon delays and drops replies. Afterwards the network shows exactly
one payment per payout recorded as paid, nobody due is left unpaid, and both checks pass.

Sized by SOAK_CREATORS (default 120) and SOAK_SECONDS (default 30).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from streampay.extensions import db
from streampay.stellar.models import Payout, PayoutStatus
from tests.stellar.conftest import XLM, give_earnings, make_creator
from tests.stellar.test_payout_races import payments_on_chain, reconcile
from tests.stellar.test_payouts import check, run
from tests.test_procfile import ROOT, procfile

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")),
        reason="the dynos share state only through a real PostgreSQL and Redis",
    ),
]
FAULTS = [("slow", {"seconds": 2}), ("504_after", {}), ("drop_after", {}), ("504_before", {}), ("drop", {}),
          ("429", {}), ("bad_seq", {})]  # fmt: skip


def dyno(name: str, log: Path, env: dict) -> subprocess.Popen:
    """A Procfile line as its own process group, its output to a file (a pipe nobody reads would block it)."""
    bin_dir = str(Path(sys.executable).parent)
    with log.open("w") as out:
        return subprocess.Popen(
            ["bash", "-c", "exec " + procfile()[name]],
            cwd=ROOT,
            env={**env, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def test_clock_and_operator_runs_with_a_flaky_horizon_pay_everyone_exactly_once(
    app, client, runner, horizon, cli_env, flask_process, tmp_path
):
    creators = int(os.environ.get("SOAK_CREATORS", "120"))
    seconds = float(os.environ.get("SOAK_SECONDS", "30"))
    people = [make_creator(app, client, horizon, 2 * XLM + random.randrange(XLM)) for _ in range(creators)]

    env = cli_env | {
        "PAYOUT_INTERVAL_SECONDS": "3",
        "PAYOUT_LEASE_SECONDS": "20",
        "REAPER_INTERVAL_SECONDS": "3600",
        "DEPOSIT_SCAN_INTERVAL_SECONDS": "3600",
        "RECONCILE_INTERVAL_SECONDS": "3600",
        "LOG_LEVEL": "INFO",
    }
    dynos = [dyno(name, tmp_path / f"{name}.log", env) for name in ("worker", "clock")]
    stopping = threading.Event()

    def faults() -> None:
        while not stopping.wait(0.7):
            kind, params = random.choice(FAULTS)
            horizon.fail_next(kind, **params)

    def streams() -> None:  # earnings keep arriving, so creators are due again and again
        while not stopping.wait(1.0):
            give_earnings(app, random.choice(people)[0], 2 * XLM)

    threads = [threading.Thread(target=faults), threading.Thread(target=streams)]
    for thread in threads:
        thread.start()
    operator_runs, failures = 0, []
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            process = flask_process("payouts", "run")
            out, _ = process.communicate(timeout=120)
            assert process.returncode in (0, 1)  # 1: "Horizon did not answer", the run picks up next time
            if process.returncode:
                failures.append(out)
            operator_runs += 1
    finally:
        stopping.set()
        for thread in threads:
            thread.join()
        for process in dynos:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
    clock_runs = (tmp_path / "worker.log").read_text().count("run_payouts")

    horizon.clear_faults()
    # Settle what the faults left open, past every envelope's bounds and the stopped dynos' leases.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        horizon.advance_time(31)
        summary = run(runner)
        if summary["open_batches"] == 0 and summary["in_flight"] == 0:
            summary = run(runner)  # and pay whoever became due meanwhile
            if summary["open_batches"] == 0 and summary["in_flight"] == 0:
                break
        time.sleep(1)
    assert summary["open_batches"] == 0 and summary["in_flight"] == 0, (
        runner.invoke(args=["payouts", "status"]).output,
        failures,
        (tmp_path / "worker.log").read_text()[-5000:],
    )

    with app.app_context():
        paid = Counter((p.destination, p.amount) for p in db.session.query(Payout).filter_by(status=PayoutStatus.PAID))
        db.session.remove()
    assert payments_on_chain(horizon) == paid  # exactly one payment on chain per payout recorded as paid
    for creator, _ in people:
        reply = client.get("/api/v1/wallet", headers={"Authorization": f"Bearer {creator['access_token']}"})
        assert reply.json["earnings"] == "0.0000000"  # nobody due is left unpaid
    assert operator_runs >= 2 and clock_runs >= 2, (operator_runs, clock_runs)
    assert reconcile(runner)["ok"] is True
    check(runner)
    print(  # the figures of this soak, for whoever runs it with -s
        f"{creators} creators, {sum(paid.values())} payouts paid in {len(horizon.applied)} transactions; "
        f"{operator_runs} operator runs and {clock_runs} clock runs; {len(horizon.submitted)} submissions"
    )
