from __future__ import annotations

import json

import click
import requests
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import func, select
from stellar_sdk import Account as StellarAccount
from stellar_sdk import Keypair, TransactionBuilder
from stellar_sdk.exceptions import BaseRequestError

from streampay import money
from streampay.errors import DomainError
from streampay.extensions import db
from streampay.inputs import check_text
from streampay.stellar import deposits, horizon, payouts, reconcile
from streampay.stellar.models import Payout, PayoutStatus
from streampay.users.service import find_by_email

stellar_cli = AppGroup("stellar")
deposits_cli = AppGroup("deposits")
payouts_cli = AppGroup("payouts")


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(getattr(exc, "message", None) or str(exc))


@stellar_cli.command("keypair")
def keypair() -> None:
    """A new random keypair (keep the secret secret)."""
    pair = Keypair.random()
    click.echo(f"public: {pair.public_key}\nsecret: {pair.secret}")


@stellar_cli.command("fund")
@click.argument("address")
@click.option("--amount", default="10000", show_default=True, help="Starting balance (create_account only).")
def fund(address: str, amount: str) -> None:
    """Fund ADDRESS: friendbot on testnet, otherwise create_account from the custody account."""
    try:
        horizon.check_address(address)
        friendbot = current_app.config.get("STELLAR_FRIENDBOT_URL")
        if current_app.config["STELLAR_NETWORK"] == "testnet" and friendbot:
            reply = requests.get(friendbot, params={"addr": address}, timeout=current_app.config["STELLAR_TIMEOUT"])
            if reply.status_code >= 400:
                raise click.ClickException(f"friendbot refused: {reply.status_code} {reply.text[:200]}")
            click.echo(f"funded {address} by friendbot")
            return
        custody = horizon.custody()
        record = horizon.load_account_record(custody.public_key)
        builder = TransactionBuilder(
            StellarAccount(custody.public_key, int(record["sequence"])),
            horizon.passphrase(),
            base_fee=horizon.base_fee(),
        )
        envelope = builder.append_create_account_op(address, amount).set_timeout(60).build()
        envelope.sign(custody)
        reply = horizon.call(lambda s: s.submit_transaction(envelope, skip_memo_required_check=True))
        click.echo(f"created {address} with {amount}: {reply['hash']}")
    except (DomainError, BaseRequestError) as exc:
        raise _fail(exc) from exc


@stellar_cli.command("sandbox")
@click.option("--port", default=8000, show_default=True, help="Port on 127.0.0.1.")
@click.option("--fund", "funding", default="100000", show_default=True, help="XLM the custody account starts with.")
def sandbox(port: int, funding: str) -> None:
    """A local Horizon with a funded custody account, for trying deposits and payouts offline.

    It keeps its ledger in memory while it runs; point the server and the CLI at it with the
    settings it prints. Payments: `flask stellar pay`.
    """
    import threading

    from streampay.sandbox.horizon import HorizonStandin

    secret = current_app.config.get("STELLAR_MASTER_SECRET_KEY")
    custody = Keypair.from_secret(secret) if secret else Keypair.random()
    standin = HorizonStandin(network_passphrase=horizon.passphrase()).start(port)
    standin.fund(custody.public_key, money.parse(funding))
    click.echo(f"Horizon sandbox on {standin.url}, custody {custody.public_key} funded with {funding} XLM.")
    click.echo("Run the server and the CLI with:")
    settings = {
        "STELLAR_NETWORK": "testnet",
        "STELLAR_HORIZON_URL": standin.url,
        "STELLAR_FRIENDBOT_URL": f"{standin.url}/friendbot",
    }
    if not secret:
        settings["STELLAR_MASTER_SECRET_KEY"] = custody.secret  # a sandbox key, printed on purpose
    for key, value in settings.items():
        click.echo(f"  export {key}={value}")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        standin.stop()


@stellar_cli.command("pay")
@click.argument("destination")
@click.argument("amount")
@click.option("--memo", help="An id memo (a wallet's deposit memo).")
@click.option(
    "--secret", envvar="STELLAR_PAYER_SECRET", help="The payer's secret; default: a new account from friendbot."
)
def pay(destination: str, amount: str, memo: str | None, secret: str | None) -> None:
    """Pay AMOUNT to DESTINATION (G... with --memo, or a muxed M... address), as a viewer's wallet would."""
    try:
        stroops = money.parse(amount)
        payer = Keypair.from_secret(secret) if secret else _friendbot_account()
        record = horizon.load_account_record(payer.public_key)
        builder = TransactionBuilder(
            StellarAccount(payer.public_key, int(record["sequence"])), horizon.passphrase(), base_fee=horizon.base_fee()
        )
        if memo is not None:
            if not memo.isdigit():
                raise click.BadParameter("an id memo is digits only", param_hint="--memo")
            builder.add_id_memo(int(memo))
        envelope = (
            builder.append_payment_op(destination, horizon.asset(), money.format(stroops)).set_timeout(60).build()
        )
        envelope.sign(payer)
        reply = horizon.call(lambda s: s.submit_transaction(envelope))
    except (DomainError, BaseRequestError, ValueError) as exc:
        raise _fail(exc) from exc
    click.echo(f"paid {money.format(stroops)} to {destination} from {payer.public_key}: {reply['hash']}")


def _friendbot_account() -> Keypair:
    url = current_app.config.get("STELLAR_FRIENDBOT_URL")
    if not url:
        raise click.ClickException("no STELLAR_FRIENDBOT_URL to fund a payer from; give --secret")
    payer = Keypair.random()
    reply = requests.get(url, params={"addr": payer.public_key}, timeout=current_app.config["STELLAR_TIMEOUT"])
    if reply.status_code >= 400:
        raise click.ClickException(f"friendbot refused: {reply.status_code} {reply.text[:200]}")
    return payer


@stellar_cli.command("status")
def status() -> None:
    """The custody account's balances and sequence, and payouts in flight."""
    try:
        custody = horizon.custody()
        record = horizon.load_account_record(custody.public_key)
    except DomainError as exc:
        raise _fail(exc) from exc
    pending = db.session.execute(
        select(func.count(), func.coalesce(func.sum(Payout.amount), 0)).where(Payout.status == PayoutStatus.IN_FLIGHT)
    ).one()
    click.echo(
        json.dumps(
            {
                "custody": custody.public_key,
                "network": current_app.config["STELLAR_NETWORK"],
                "sequence": record["sequence"],
                "balances": record["balances"],
                "payouts_in_flight": {"count": pending[0], "amount": money.format(pending[1])},
            },
            indent=2,
        )
    )


@deposits_cli.command("scan")
def scan() -> None:
    """Credit new payments to the custody account now."""
    try:
        click.echo(json.dumps(deposits.scan()))
    except DomainError as exc:
        raise _fail(exc) from exc


@deposits_cli.command("assign")
@click.argument("operation_id")
@click.argument("email")
def assign(operation_id: str, email: str) -> None:
    """Credit an unmatched deposit to EMAIL's wallet."""
    try:
        user = find_by_email(email)
        if user is None:
            raise click.ClickException(f"no user {email}")
        deposit = deposits.assign(check_text(operation_id, "operation_id"), user.id)
    except DomainError as exc:
        raise _fail(exc) from exc
    click.echo(f"assigned {money.format(deposit.amount)} from operation {operation_id} to {user.email}")


@payouts_cli.command("run")
def run() -> None:
    """Settle open payout batches and pay every creator who is due.

    Runs may overlap (the clock's, an operator's): a batch another run is advancing is left to
    it, with a line that says so, and this run still exits 0. The last line is a JSON summary.
    """
    try:
        summary = payouts.run()
    except DomainError as exc:
        raise _fail(exc) from exc
    for batch_id in summary["held_by_another_run"]:
        click.echo(f"batch {batch_id}: another run holds it and carries it on")
    click.echo(json.dumps(summary))


@payouts_cli.command("status")
@click.option("--limit", default=20, show_default=True, help="How many recent payouts to list.")
def payouts_status(limit: int) -> None:
    """Open batches with their envelopes, and recent payouts with why any went back."""
    click.echo(json.dumps(payouts.status(limit), indent=2))


@stellar_cli.command("reconcile")
def reconcile_command() -> None:
    """Check the ledger against the network: every payment matched once, custody's balance explained.

    Exits 1 on any difference, and says what differs.
    """
    try:
        report = reconcile.reconcile()
    except DomainError as exc:
        raise _fail(exc) from exc
    click.echo(json.dumps(report.as_dict(), indent=2))
    if not report.ok:
        raise click.ClickException("the ledger and the network differ: " + "; ".join(report.problems))
