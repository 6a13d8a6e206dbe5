from __future__ import annotations

import uuid

import click
from flask.cli import AppGroup
from sqlalchemy import func, select

from streampay import money
from streampay.errors import DomainError
from streampay.extensions import db
from streampay.inputs import check_text
from streampay.ledger import service
from streampay.ledger.models import Account, AccountKind, Entry, Transaction
from streampay.users.service import find_by_email

wallet_cli = AppGroup("wallet")
ledger_cli = AppGroup("ledger")


def _move(email: str, amount: str, reason: str, key: str | None, sign: int) -> None:
    try:
        user = find_by_email(email)
        if key is not None:
            check_text(key, "idempotency_key")
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    if user is None:
        raise click.ClickException(f"no user {email}")
    try:
        stroops = money.parse(amount)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if stroops <= 0:
        raise click.ClickException("the amount must be positive")
    try:
        txn = service.adjust(user.id, sign * stroops, reason, key or f"adjustment:{uuid.uuid4()}")
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(
        f"posted transaction {txn.id}: {'+' if sign > 0 else '-'}{money.format(stroops)} to {user.email}; "
        f"balance {money.format(service.wallet(user.id).balance)}"
    )


_options = [
    click.argument("email"),
    click.argument("amount"),
    click.option("--reason", required=True, help="Why; kept on the posting."),
    click.option("--idempotency-key", "key", help="Repeat a command safely: the same key posts once."),
]


def _with_options(f):
    for option in reversed(_options):
        f = option(f)
    return f


@wallet_cli.command("credit")
@_with_options
def credit(email: str, amount: str, reason: str, key: str | None) -> None:
    """Add AMOUNT (e.g. 10.5) to a viewer's wallet."""
    _move(email, amount, reason, key, +1)


@wallet_cli.command("debit")
@_with_options
def debit(email: str, amount: str, reason: str, key: str | None) -> None:
    """Take AMOUNT from a viewer's wallet (never below what is available)."""
    _move(email, amount, reason, key, -1)


def violations() -> list[str]:
    problems = []
    total = db.session.scalar(select(func.coalesce(func.sum(Entry.amount), 0)))
    if total != 0:
        problems.append(f"entries sum to {total}, not 0")
    unbalanced = db.session.execute(
        select(Entry.transaction_id, func.sum(Entry.amount))
        .group_by(Entry.transaction_id)
        .having(func.sum(Entry.amount) != 0)
    ).all()
    problems += [f"transaction {t} sums to {s}" for t, s in unbalanced]
    sums = service.balance_sums()
    held_by_viewer = service.claimed_holds()
    for acct in db.session.scalars(select(Account)):
        if acct.balance != sums.get(acct.id, 0):
            problems.append(f"account {acct.id} ({acct.kind}) balance {acct.balance} != entries {sums.get(acct.id, 0)}")
        if acct.kind is AccountKind.VIEWER_WALLET:
            if acct.balance < 0 or acct.held < 0 or acct.held > acct.balance:
                problems.append(f"wallet {acct.id} balance {acct.balance} held {acct.held}")
            if acct.held != (held_by_viewer.get(acct.user_id) or 0):
                problems.append(
                    f"wallet {acct.id} holds {acct.held} but its open sessions hold "
                    f"{held_by_viewer.get(acct.user_id) or 0}"
                )
    credited = db.session.scalar(
        select(func.coalesce(func.sum(Entry.amount), 0))
        .join(Transaction)
        .join(Account)
        .where(Transaction.kind == "deposit", Account.kind == AccountKind.CUSTODY)
    )
    paid = db.session.scalar(
        select(func.coalesce(func.sum(Entry.amount), 0))
        .join(Transaction)
        .join(Account)
        .where(Transaction.kind == "payout_confirmed", Account.kind == AccountKind.CUSTODY)
    )
    custody = db.session.scalar(
        select(func.coalesce(func.sum(Account.balance), 0)).where(Account.kind == AccountKind.CUSTODY)
    )
    # Custody is negative by the sign convention: deposits credited minus payouts confirmed, negated.
    if custody != credited + paid:
        problems.append(f"custody {-custody} != deposits credited minus payouts confirmed {-(credited + paid)}")
    return problems


@ledger_cli.command("check")
def check() -> None:
    """All entries sum to zero, balances match entries, no negative wallet, holds match open sessions."""
    problems = violations()
    for p in problems:
        click.echo(f"VIOLATION: {p}", err=True)
    if problems:
        raise click.exceptions.Exit(1)
    count = db.session.scalar(select(func.count()).select_from(Transaction))
    click.echo(f"ledger ok: {count} transactions balanced; wallets covered; holds match open sessions")
