"""The one way money moves: `post(entries, idempotency_key)`, plus balances and holds.

A posting is balanced, atomic (one database transaction) and idempotent (a replay of the key
with the same legs and kind returns the first transaction and posts nothing; with another
payload it is a conflict). The database refuses an overdraft and a duplicate key, so no caller
can break either rule.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from blinker import Namespace
from sqlalchemy import and_, bindparam, false, func, insert, or_, select, union_all, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import aliased, lazyload
from sqlalchemy.orm.attributes import set_committed_value

from streampay.dbtypes import utcnow
from streampay.errors import Conflict, Invalid
from streampay.extensions import db
from streampay.inputs import check_text
from streampay.ledger.models import PER_USER, Account, AccountKind, Entry, Transaction
from streampay.money import MAX_STROOPS

PLATFORM = "platform"


class InsufficientFunds(Conflict):
    code = "insufficient_funds"


class IdempotencyConflict(Conflict):
    code = "idempotency_conflict"


class BeyondLimit(Invalid):
    code = "amount_too_large"


# The CHECK constraints that mean "not enough money"; any other database error is not an overdraft.
OVERDRAFT_CONSTRAINTS = ("wallet_covered", "earnings_non_negative")


@dataclass(frozen=True)
class Leg:
    account: Account
    amount: int


def account(kind: AccountKind, user_id: uuid.UUID | None = None, *, lock: bool = False) -> Account:
    """Get or create an account; per-user kinds need the user, platform kinds must not have one.

    `lock` reads it under a row lock (PostgreSQL), fresh, for read-then-write decisions.
    """
    _, owner = _key(kind, user_id)
    found = db.session.scalar(_LOCKED_ACCOUNT if lock else _ACCOUNT, {"kind": kind, "owner": owner})
    if found is not None:
        return found
    try:
        with db.session.begin_nested():
            found = Account(kind=kind, user_id=user_id, owner=owner, balance=0, held=0)
            db.session.add(found)
    except IntegrityError:
        # Another request created it first.
        found = db.session.scalar(_ACCOUNT, {"kind": kind, "owner": owner})
    return found


# Built once: every start and settlement reads a wallet (SQLAlchemy then skips to the compiled form).
_ACCOUNT = select(Account).where(Account.kind == bindparam("kind"), Account.owner == bindparam("owner"))
_LOCKED_ACCOUNT = _ACCOUNT.with_for_update().execution_options(populate_existing=True)


def wallet_with(user_id: uuid.UUID, *others: tuple[AccountKind, uuid.UUID | None]) -> list[Account]:
    """A viewer's wallet under its row lock, fresh, and the accounts `others` (kind, user) read plainly, in one
    query (the shared accounts a posting pays are locked only by the posting's own updates); each made if missing.

    Returns the wallet, then the others in their order.
    """
    keys = [_key(AccountKind.VIEWER_WALLET, user_id), *(_key(kind, user) for kind, user in others)]
    # The lock sits in a CTE: only the locking step returns the row as the wallet's last writer left it.
    locked = select(Account).where(_is(*keys[0])).with_for_update().cte("locked_wallet")
    plain = select(Account).where(or_(false(), *(_is(*key) for key in keys[1:])))
    rows = aliased(Account, union_all(select(locked), plain).subquery())
    found = {(a.kind, a.owner): a for a in db.session.scalars(select(rows).execution_options(populate_existing=True))}
    wallet = found.get(keys[0]) or account(AccountKind.VIEWER_WALLET, user_id, lock=True)
    return [
        wallet,
        *(found.get(key) or account(kind, user) for key, (kind, user) in zip(keys[1:], others, strict=True)),
    ]


def _key(kind: AccountKind, user_id: uuid.UUID | None) -> tuple[AccountKind, str]:
    if (kind in PER_USER) != (user_id is not None):
        raise ValueError(f"{kind} {'needs' if kind in PER_USER else 'takes no'} user")
    return kind, str(user_id) if user_id else PLATFORM


def _is(kind: AccountKind, owner: str):
    return and_(Account.kind == kind, Account.owner == owner)


def _lock_order(leg: Leg) -> tuple:
    return (leg.account.kind is not AccountKind.VIEWER_WALLET, leg.account.id)


def post(
    legs: list[Leg],
    idempotency_key: str,
    kind: str,
    *,
    reason: str | None = None,
    created_by: uuid.UUID | None = None,
    details: dict | None = None,
    commit: bool = True,
    at: datetime | None = None,
) -> Transaction:
    """Write one balanced transaction.

    A replayed key with the same legs and kind returns the first transaction and changes nothing;
    with other legs, amounts or kind it raises IdempotencyConflict and changes nothing.
    `at` dates it (a charge is dated by the server clock that billed it); otherwise now.
    A posting the database refuses (an overdraft, a balance past 64 bits) rolls back the whole
    transaction it was part of, so nothing of it, nor of what the caller wrote before, is left.
    """
    legs = [leg for leg in legs if leg.amount != 0]
    if not legs or sum(leg.amount for leg in legs) != 0:
        raise ValueError(f"unbalanced or empty posting {idempotency_key}: {[leg.amount for leg in legs]}")
    if any(not isinstance(leg.amount, int) for leg in legs):
        raise TypeError("amounts are integer stroops")
    try:
        _within_limits(legs)
    except BeyondLimit:
        first = _first_of(idempotency_key)
        if first is not None:
            return _replayed(first, legs, kind)
        raise
    at = at or utcnow()
    try:
        # The key is claimed by the INSERT itself (the unique index decides): no read before it, and no savepoint,
        # since a key already used is not an error but an empty RETURNING.
        txn = db.session.scalar(
            _insert_new(Transaction)
            .values(
                idempotency_key=idempotency_key,
                kind=kind,
                reason=reason,
                created_by=created_by,
                details=details or {},
                created_at=at,
            )
            .on_conflict_do_nothing(index_elements=[Transaction.idempotency_key])
            .returning(Transaction)
            .options(lazyload(Transaction.entries))  # a new transaction's entries are the legs: no read of them
        )
        if txn is None:
            return _replayed(_first_of(idempotency_key), legs, kind)
        db.session.execute(
            insert(Entry),
            [
                {"transaction_id": txn.id, "account_id": leg.account.id, "amount": leg.amount, "created_at": at}
                for leg in legs
            ],
        )
        # Atomic increments, so concurrent postings never lose an update, in one global order (so they never
        # deadlock): viewer wallets first, each a viewer's own, then the accounts that many postings share
        # (a creator's earnings, the platform's), whose row locks are then held for the shortest time.
        # RETURNING refreshes each account without another query.
        for leg in sorted(legs, key=_lock_order):
            balance, held = db.session.execute(
                update(Account)
                .where(Account.id == leg.account.id)
                .values(balance=Account.balance + leg.amount)
                .returning(Account.balance, Account.held)
                .execution_options(synchronize_session=False)
            ).one()
            set_committed_value(leg.account, "balance", balance)
            set_committed_value(leg.account, "held", held)
    except IntegrityError as exc:
        db.session.rollback()
        if _is_overdraft(exc):
            raise InsufficientFunds("Not enough funds for that.") from exc
        raise
    except DataError as exc:  # PostgreSQL: a balance past 64 bits ("bigint out of range")
        db.session.rollback()
        raise BeyondLimit(f"That would take a balance past {MAX_STROOPS} stroops.") from exc
    if commit:
        db.session.commit()
    return txn


def _insert_new(model):
    """An INSERT that can skip a row whose unique key exists (ON CONFLICT DO NOTHING), in the session's dialect."""
    if db.session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)


def _first_of(idempotency_key: str) -> Transaction | None:
    return db.session.scalar(select(Transaction).where(Transaction.idempotency_key == idempotency_key))


def _replayed(txn: Transaction, legs: list[Leg], kind: str) -> Transaction:
    """The first transaction of a key, if this call asks for the same posting; else a conflict."""
    first = sorted((entry.account_id, entry.amount) for entry in txn.entries)
    again = sorted((leg.account.id, leg.amount) for leg in legs)
    if txn.kind != kind or first != again:
        raise IdempotencyConflict(
            "That idempotency key was already used for a different posting; use a new key.",
            {"idempotency_key": [f"Already used by transaction {txn.id} ({txn.kind})."]},
        )
    return txn


def _within_limits(legs: list[Leg]) -> None:
    # SQLite would quietly turn an overflowing integer into a float; PostgreSQL raises DataError.
    for leg in legs:
        if abs(leg.amount) > MAX_STROOPS or abs((leg.account.balance or 0) + leg.amount) > MAX_STROOPS:
            raise BeyondLimit(f"That would take a balance past {MAX_STROOPS} stroops.")


def _is_overdraft(exc: IntegrityError) -> bool:
    return any(name in str(exc.orig) for name in OVERDRAFT_CONSTRAINTS)


# A Core statement, built once: every start and stop runs it.
_HOLD = (
    update(Account.__table__)
    .where(Account.__table__.c.id == bindparam("account_id"))
    .values(held=Account.__table__.c.held + bindparam("amount"))
    .returning(Account.__table__.c.held)
)


def hold(wallet: Account, amount: int) -> None:
    """Reserve (positive) or release (negative) part of a wallet read under its row lock.

    Under the lock the check below is exact, so the update needs no savepoint of its own; the
    database still refuses an overdraft whatever a caller does (then the whole transaction fails).
    """
    if amount == 0:
        return
    if not 0 <= wallet.held + amount <= wallet.balance:
        raise InsufficientFunds("Not enough available funds to reserve.")
    try:
        held = db.session.execute(_HOLD, {"account_id": wallet.id, "amount": amount}).scalar_one()
    except IntegrityError as exc:
        raise InsufficientFunds("Not enough available funds to reserve.") from exc
    set_committed_value(wallet, "held", held)


def wallet(user_id: uuid.UUID, *, lock: bool = False) -> Account:
    return account(AccountKind.VIEWER_WALLET, user_id, lock=lock)


def earnings(user_id: uuid.UUID) -> Account:
    return account(AccountKind.CREATOR_EARNINGS, user_id)


def platform(kind: AccountKind) -> Account:
    return account(kind)


def adjust(
    user_id: uuid.UUID, amount: int, reason: str, idempotency_key: str, created_by: uuid.UUID | None = None
) -> Transaction:
    """An operator's audited credit (positive) or debit (negative) of a viewer wallet."""
    if not reason or not reason.strip():
        raise Invalid("A reason is required.", {"reason": ["Required."]})
    check_text(reason, "reason")
    w = wallet(user_id)
    source = platform(AccountKind.ADJUSTMENTS)
    return post(
        [Leg(w, amount), Leg(source, -amount)],
        idempotency_key,
        "adjustment",
        reason=reason.strip(),
        created_by=created_by,
    )


# `ledger check` asks who holds money in viewers' wallets and why: each receiver (streaming: its active
# sessions) answers {viewer id: amount held}, so the ledger checks holds without importing its callers.
holds_claimed = Namespace().signal("ledger-holds-claimed")


def claimed_holds() -> dict:
    """What the layers above say they hold, by viewer id, summed over every receiver of holds_claimed."""
    total: dict = {}
    for _, claims in holds_claimed.send():
        for viewer_id, amount in (claims or {}).items():
            total[viewer_id] = total.get(viewer_id, 0) + (amount or 0)
    return total


def balance_sums() -> dict:
    """Totals for `ledger check`."""
    by_account = dict(
        db.session.execute(select(Entry.account_id, func.sum(Entry.amount)).group_by(Entry.account_id)).all()
    )
    return by_account
