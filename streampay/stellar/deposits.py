"""Deposits: read the custody account's payments from a stored cursor and credit each once.

Each page's credits and the new cursor are written in one database transaction, and a
deposit is unique by Horizon operation id, so a replayed or overlapping scan credits nothing twice.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import select
from stellar_sdk.exceptions import BaseRequestError

from streampay import money
from streampay.errors import Conflict, NotFound
from streampay.extensions import db
from streampay.ledger import service as ledger
from streampay.ledger.models import Account, AccountKind
from streampay.stellar import events, horizon
from streampay.stellar.models import Cursor, Deposit, DepositStatus

log = logging.getLogger(__name__)
CURSOR = "custody-payments"
PAGE = 200


def _wallet_owner(reference: str | None) -> uuid.UUID | None:
    """A memo or muxed id names a wallet by its ledger account id."""
    if not reference or not reference.isdigit() or len(reference) > 18:
        return None
    acct = db.session.get(Account, int(reference))
    return acct.user_id if acct is not None and acct.kind is AccountKind.VIEWER_WALLET else None


def _incoming(record: dict, custody: str) -> bool:
    return (
        record.get("type") in ("payment", "path_payment_strict_receive", "path_payment_strict_send")
        and record.get("transaction_successful", True) is True
        and record.get("to") == custody
        and record.get("from") != custody
        and horizon.matches_asset(record)
    )


def _credit(record: dict) -> Deposit:
    txn = record.get("transaction") or {}
    memo = txn.get("memo") if txn.get("memo_type") in ("id", "text") else None
    muxed_id = record.get("to_muxed_id")
    owner = _wallet_owner(str(muxed_id) if muxed_id is not None else None) or _wallet_owner(memo)
    amount = money.parse(record["amount"])
    deposit = Deposit(
        operation_id=record["id"],
        tx_hash=record["transaction_hash"],
        from_address=record["from"],
        amount=amount,
        memo=memo,
        muxed_id=str(muxed_id) if muxed_id is not None else None,
        status=DepositStatus.CREDITED if owner else DepositStatus.UNMATCHED,
        user_id=owner,
    )
    db.session.add(deposit)
    events.deposit_seen(deposit)
    target = ledger.wallet(owner) if owner else ledger.platform(AccountKind.UNMATCHED_DEPOSITS)
    ledger.post(
        [ledger.Leg(target, amount), ledger.Leg(ledger.platform(AccountKind.CUSTODY), -amount)],
        f"deposit:{record['id']}",
        "deposit",
        details={"operation_id": record["id"], "tx_hash": record["transaction_hash"]},
        commit=False,
    )
    return deposit


def scan(max_pages: int = 50) -> dict:
    """Credit new payments to the custody account; returns counts."""
    custody = horizon.custody().public_key
    counts = {"credited": 0, "unmatched": 0, "ignored": 0, "pages": 0}
    for _ in range(max_pages):
        cursor = db.session.get(Cursor, CURSOR)
        try:
            after = cursor.value if cursor else "0"
            page = horizon.call(
                lambda s, after=after: (
                    s.payments()
                    .for_account(custody)
                    .cursor(after)
                    .order(desc=False)
                    .limit(PAGE)
                    .join("transactions")
                    .call()
                )
            )
        except BaseRequestError as exc:
            db.session.rollback()
            raise horizon.HorizonUnavailable("Horizon did not answer the payments query.") from exc
        records = page["_embedded"]["records"]
        if not records:
            db.session.rollback()
            break
        known = set(
            db.session.scalars(select(Deposit.operation_id).where(Deposit.operation_id.in_([r["id"] for r in records])))
        )
        for record in records:
            if record["id"] in known or not _incoming(record, custody):
                counts["ignored"] += 1
                continue
            deposit = _credit(record)
            counts["credited" if deposit.status is DepositStatus.CREDITED else "unmatched"] += 1
        if cursor is None:
            cursor = Cursor(name=CURSOR, value="0")
            db.session.add(cursor)
        cursor.value = records[-1]["paging_token"]
        db.session.commit()
        counts["pages"] += 1
        if len(records) < PAGE:
            break
    return counts


def assign(operation_id: str, user_id: uuid.UUID) -> Deposit:
    """Move an unmatched deposit to a wallet (an admin knows whose it is)."""
    deposit = db.session.scalar(select(Deposit).where(Deposit.operation_id == operation_id).with_for_update())
    if deposit is None:
        raise NotFound(f"No deposit with operation id {operation_id}.")
    if deposit.status is not DepositStatus.UNMATCHED:
        raise Conflict(f"That deposit is {deposit.status.value}, not unmatched.")
    deposit.move_to(DepositStatus.ASSIGNED)
    deposit.user_id = user_id
    events.deposit_seen(deposit)
    ledger.post(
        [
            ledger.Leg(ledger.platform(AccountKind.UNMATCHED_DEPOSITS), -deposit.amount),
            ledger.Leg(ledger.wallet(user_id), deposit.amount),
        ],
        f"deposit-assign:{operation_id}",
        "deposit_assign",
        details={"operation_id": operation_id},
        commit=False,
    )
    db.session.commit()
    return deposit
