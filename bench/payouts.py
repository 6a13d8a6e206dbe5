"""Payout run benchmark: N creators with earnings, one `payouts.run()` against the Horizon stand-in.

    .venv/bin/python bench/payouts.py [--creators 10000] [--sessions-per-creator 20]

Uses a scratch PostgreSQL database (dropped at the end) and the local Horizon stand-in from
tests/, so nothing leaves the machine. Prints the transactions used against ceil(N/100), the time
to build and sign the envelopes, the whole run's time, and the on-chain fees against the
original design's one payment transaction per streaming session.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stellar_sdk import Keypair, Network  # noqa: E402

from streampay import create_app  # noqa: E402
from streampay.dbtypes import utcnow  # noqa: E402
from streampay.extensions import db, upgrade  # noqa: E402
from streampay.ledger import service as ledger  # noqa: E402
from streampay.ledger.cli import violations  # noqa: E402
from streampay.ledger.models import AccountKind  # noqa: E402
from streampay.sandbox.horizon import HorizonStandin  # noqa: E402
from streampay.stellar import envelopes, payouts  # noqa: E402
from streampay.stellar.models import Payout, PayoutStatus  # noqa: E402
from streampay.users.models import Role, User  # noqa: E402

XLM = 10_000_000
DB = "streampay_bench_payouts"


def psql(sql: str) -> None:
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", os.environ.get("PGUSER", "postgres"), "-d", "postgres", "-qc", sql],
        check=True,
        capture_output=True,
    )


def seed(app, horizon: HorizonStandin, creators: int) -> None:
    """Creators with verified addresses that exist on the network, and earnings posted as one transaction."""
    with app.app_context():
        users, legs = [], []
        for n in range(creators):
            keypair = Keypair.random()
            horizon.create_account(keypair.public_key, balance_stroops=XLM)
            users.append(
                User(
                    id=uuid.uuid4(),
                    email=f"c{n}@bench.test",
                    username=f"bench-{n}",
                    password_hash="-",
                    role=Role.CREATOR,
                    stellar_address=keypair.public_key,
                    stellar_verified_at=utcnow(),
                )
            )
        db.session.add_all(users)
        db.session.commit()
        total = 0
        for n, user in enumerate(users):
            amount = 2 * XLM + n
            legs.append(ledger.Leg(ledger.earnings(user.id), amount))
            total += amount
        legs.append(ledger.Leg(ledger.platform(AccountKind.ADJUSTMENTS), -total))
        ledger.post(legs, "bench-earnings", "adjustment", reason="benchmark earnings")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--creators", type=int, default=10_000)
    parser.add_argument(
        "--sessions-per-creator",
        type=int,
        default=20,
        help="streaming sessions behind each creator's earnings (the per-session design pays each)",
    )
    args = parser.parse_args()

    psql(f"DROP DATABASE IF EXISTS {DB}")
    psql(f"CREATE DATABASE {DB}")
    custody = Keypair.random()
    try:
        with HorizonStandin(network_passphrase=Network.TESTNET_NETWORK_PASSPHRASE) as horizon:
            horizon.create_account(custody.public_key, balance_stroops=10**9 * XLM)
            app = create_app(
                {
                    "SQLALCHEMY_DATABASE_URI": f"postgresql+psycopg2://{os.environ.get('PGUSER', 'postgres')}"
                    f"@127.0.0.1:5432/{DB}",
                    "REDIS_URL": None,
                    "LOG_LEVEL": "WARNING",
                    "EMBEDDED_WORKER": False,
                    "STELLAR_HORIZON_URL": horizon.url,
                    "STELLAR_PASSPHRASE": Network.TESTNET_NETWORK_PASSPHRASE,
                    "STELLAR_MASTER_SECRET_KEY": custody.secret,
                    "PAYOUT_MIN_AMOUNT": "1",
                    "PAYOUT_TX_TIMEOUT": 300,
                    "STELLAR_TIMEOUT": 60,
                }
            )
            with app.app_context():
                upgrade()
            started = time.perf_counter()
            seed(app, horizon, args.creators)
            print(f"seeded {args.creators} creators in {time.perf_counter() - started:.1f} s")

            with app.app_context():
                started = time.perf_counter()
                summary = payouts.run()
                while summary["open_batches"]:
                    summary = payouts.run()
                total_s = time.perf_counter() - started

                by_batch: dict[int, list[Payout]] = {}
                for payout in db.session.query(Payout).order_by(Payout.batch_id, Payout.created_at):
                    by_batch.setdefault(payout.batch_id, []).append(payout)
                started = time.perf_counter()
                for seq, batch in enumerate(by_batch.values(), start=1):
                    envelopes.sign(custody, [(p.destination, p.amount) for p in batch], seq, 2**40)
                sign_s = time.perf_counter() - started
                paid = db.session.query(Payout).filter(Payout.status == PayoutStatus.PAID).count()
                problems = violations()

            fees = sum(int(horizon.transaction(h)["fee_charged"]) for h in horizon.applied)
            per_session = args.creators * args.sessions_per_creator * 100
            rows = [
                ("creators paid", f"{paid} of {args.creators}"),
                ("transactions used", f"{len(horizon.applied)} (ceil(N/100) = {math.ceil(args.creators / 100)})"),
                ("envelopes submitted", str(len(horizon.submitted))),
                (
                    "build + sign, all envelopes",
                    f"{sign_s * 1000:.0f} ms ({sign_s * 1000 / max(len(by_batch), 1):.1f} ms per 100-payment envelope)",
                ),
                ("whole payout run", f"{total_s:.2f} s ({total_s * 1000 / max(args.creators, 1):.2f} ms per payment)"),
                ("on-chain fees, batched payouts", f"{fees} stroops ({fees / XLM:.4f} XLM)"),
                (
                    f"one tx per session ({args.sessions_per_creator}/creator)",
                    f"{per_session} stroops ({per_session / XLM:.4f} XLM), "
                    f"{per_session / max(fees, 1):.1f}x the batched",
                ),
                ("ledger check", "ok" if not problems else f"{len(problems)} violations"),
            ]
            width = max(len(k) for k, _ in rows)
            print()
            for key, value in rows:
                print(f"{key:<{width}}  {value}")
    finally:
        db_engine_dispose()
        psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


def db_engine_dispose() -> None:
    try:
        db.session.remove()
    except RuntimeError:
        pass


if __name__ == "__main__":
    main()
