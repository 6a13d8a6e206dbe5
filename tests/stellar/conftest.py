from __future__ import annotations

import uuid

import pytest
from stellar_sdk import Keypair, Network, TransactionEnvelope

from streampay.extensions import db
from streampay.ledger import service as ledger
from streampay.sandbox.horizon import HorizonStandin
from tests.conftest import bearer, register

PASSPHRASE = Network.TESTNET_NETWORK_PASSPHRASE
XLM = 10_000_000


@pytest.fixture
def custody() -> Keypair:
    return Keypair.random()


@pytest.fixture(params=["rejected", "in_ledger"])
def network_mode(request) -> str:
    """Real Stellar applies a payment to a missing account as a failed transaction (fee and sequence
    spent); some Horizons reject such a transaction before the ledger. Payouts must be right under both."""
    return request.param


@pytest.fixture
def custody_funding() -> int:
    """What custody holds on chain at the start (parametrize it to start short)."""
    return 1_000_000 * XLM


@pytest.fixture
def horizon(custody, custody_funding, request):
    mode = request.getfixturevalue("network_mode") if "network_mode" in request.fixturenames else "rejected"
    with HorizonStandin(network_passphrase=PASSPHRASE, failed_ops_consume_sequence=mode == "in_ledger") as standin:
        standin.fund(custody.public_key, custody_funding)  # recorded, so reconcile knows the opening
        yield standin
        assert standin.errors == []


@pytest.fixture
def stellar_app(app_factory, horizon, custody):
    """An app wired to the stand-in and the custody account; keyword arguments override settings."""

    def build(**overrides):
        return app_factory(
            **{
                **dict(
                    STELLAR_NETWORK="testnet",
                    STELLAR_HORIZON_URL=horizon.url,
                    STELLAR_PASSPHRASE=PASSPHRASE,
                    STELLAR_MASTER_SECRET_KEY=custody.secret,
                    STELLAR_FRIENDBOT_URL=f"{horizon.url}/friendbot",
                    STELLAR_TIMEOUT=20,  # generous: a loaded CI box must not read slowness as an outage
                    PAYOUT_MIN_AMOUNT="1",
                    PAYOUT_TX_TIMEOUT=30,
                    RATELIMIT_ENABLED=False,
                    STELLAR_HOME_DOMAIN="streampay.test",
                    STELLAR_WEB_AUTH_DOMAIN="streampay.test",
                ),
                **overrides,
            }
        )

    return build


@pytest.fixture
def app(stellar_app):
    return stellar_app()


def signed(challenge_xdr: str, *signers: Keypair, passphrase: str = PASSPHRASE) -> str:
    envelope = TransactionEnvelope.from_xdr(challenge_xdr, passphrase)
    for keypair in signers:
        envelope.sign(keypair)
    return envelope.to_xdr()


def link_address(client, user: dict, keypair: Keypair) -> dict:
    """SEP-10, as a wallet does it: ask for a challenge, sign it, post it back signed in."""
    challenge = client.post("/api/v1/stellar/auth/challenge", json={"account": keypair.public_key})
    assert challenge.status_code == 200, challenge.json
    reply = client.post(
        "/api/v1/stellar/auth/verify",
        json={"transaction": signed(challenge.json["transaction"], keypair)},
        headers=bearer(user["access_token"]),
    )
    assert reply.status_code == 200, reply.json
    return reply.json


def give_earnings(app, user: dict, stroops: int) -> None:
    """Earnings as streams would leave them: a balanced posting from platform adjustments."""
    from streampay.ledger.models import AccountKind

    with app.app_context():
        ledger.post(
            [
                ledger.Leg(ledger.earnings(uuid.UUID(user["user"]["id"])), stroops),
                ledger.Leg(ledger.platform(AccountKind.ADJUSTMENTS), -stroops),
            ],
            f"test-earnings:{uuid.uuid4()}",
            "adjustment",
            reason="earned by streams",
        )
        db.session.remove()


def make_creator(app, client, horizon, earnings: int = 5 * XLM, *, funded: bool = True) -> tuple[dict, Keypair]:
    """A creator with earnings and a verified payout address (on the network unless `funded` is False)."""
    creator = register(client, role="creator")
    keypair = Keypair.random()
    if funded:
        horizon.create_account(keypair.public_key, balance_stroops=1 * XLM)
    link_address(client, creator, keypair)
    give_earnings(app, creator, earnings)
    return creator, keypair


@pytest.fixture
def paid_creator(app, client, horizon):
    """make_creator on the test's app."""

    def make(earnings: int = 5 * XLM, *, funded: bool = True) -> tuple[dict, Keypair]:
        return make_creator(app, client, horizon, earnings, funded=funded)

    return make


@pytest.fixture
def cli_env(horizon, custody, db_url, tmp_path):
    """The environment of a `flask` process of its own (a clock's run, an operator's) on this test's database."""
    import os
    from pathlib import Path

    env = {
        **os.environ,
        "STELLAR_HORIZON_URL": horizon.url,
        "STELLAR_MASTER_SECRET_KEY": custody.secret,
        "STELLAR_NETWORK": "testnet",
        "PAYOUT_MIN_AMOUNT": "1",
        "PAYOUT_TX_TIMEOUT": "30",
        "STELLAR_TIMEOUT": "20",
        "LOG_LEVEL": "WARNING",
        "FLASK_APP": "streampay:create_app",
    }
    if db_url.startswith("sqlite"):
        env.pop("DATABASE_URL", None)
        env["INSTANCE_PATH"] = str(tmp_path / "instance")
        Path(env["INSTANCE_PATH"]).mkdir()
        os.symlink(db_url.removeprefix("sqlite:///"), Path(env["INSTANCE_PATH"], "streampay.sqlite3"))
    else:
        env["DATABASE_URL"] = db_url.replace("postgresql+psycopg2", "postgresql")
    return env


@pytest.fixture
def flask_process(cli_env):
    """Start `flask ARGS...` as a process of its own; every one started is ended after the test."""
    import subprocess
    import sys
    from pathlib import Path

    started = []

    def start(*args: str, **env) -> subprocess.Popen:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "flask"), *args],
            cwd=Path(__file__).resolve().parents[2],
            env={**cli_env, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()
        if process.stdout:
            process.stdout.close()
