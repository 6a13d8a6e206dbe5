"""Payouts: batched, exactly-once payments of creator earnings on Stellar.

A run settles the batches that are open, then forms new ones for every creator who is due
(earnings at the threshold, a proven address, no refusal of their own since they proved it).
How one batch is advanced without ever paying twice is in `settle.py`; how Horizon's answers
are read, in `outcomes.py`.
"""

from __future__ import annotations

import logging
import uuid
from concurrent.futures import ThreadPoolExecutor

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from stellar_sdk.exceptions import BaseRequestError

from streampay import money
from streampay.dbtypes import utcnow
from streampay.extensions import db
from streampay.ledger import service as ledger
from streampay.ledger.models import Account, AccountKind
from streampay.stellar import envelopes, horizon, settle
from streampay.stellar.models import BatchStatus, Cursor, Payout, PayoutAttempt, PayoutBatch, PayoutStatus, Refusal
from streampay.users.models import User

log = logging.getLogger(__name__)
MAX_OPS = envelopes.MAX_OPS
FORMATION_LOCK = "payout-formation"


def _lock_formation() -> None:
    """Serialize batch formation (a row both PostgreSQL and SQLite lock for the transaction)."""
    for _ in range(2):
        stmt = update(Cursor).where(Cursor.name == FORMATION_LOCK).values(value="locked", updated_at=utcnow())
        if db.session.execute(stmt).rowcount:
            return
        try:
            with db.session.begin_nested():
                db.session.add(Cursor(name=FORMATION_LOCK, value="locked"))
            return
        except IntegrityError:
            continue  # another run made the row first: wait on its lock instead
    raise RuntimeError("could not take the payout formation lock")


def form_batches(run_id: str) -> list[int]:
    """Move every eligible creator's earnings to payouts in flight, in batches of at most 100.

    One balanced posting per batch (a leg per creator), idempotent by batch. The batches are
    leased to this run from the start, so no other run sends anything for them meanwhile.
    """
    _lock_formation()
    if db.session.scalar(select(PayoutBatch.id).where(PayoutBatch.status == BatchStatus.OPEN).limit(1)):
        db.session.commit()
        return []  # another run formed batches since this one looked: they go first, in order
    minimum = money.parse(current_app.config["PAYOUT_MIN_AMOUNT"])
    due = db.session.execute(
        select(Account, User)
        .join(User, User.id == Account.user_id)
        .where(
            Account.kind == AccountKind.CREATOR_EARNINGS,
            Account.balance >= minimum,
            User.stellar_address.is_not(None),
            User.stellar_verified_at.is_not(None),
            User.is_active.is_(True),
        )
        .order_by(Account.id)
        .execution_options(populate_existing=True)
    ).all()
    refused = _refused_since_verified({user.id for _, user in due})
    due = [(account, user) for account, user in due if user.id not in refused]
    in_flight = ledger.platform(AccountKind.PAYOUTS_IN_FLIGHT)
    channels = [keypair.public_key for keypair in envelopes.sources()]
    lease_until = utcnow() + settle.lease_duration()
    batches: list[PayoutBatch] = []
    for start in range(0, len(due), MAX_OPS):
        batch = PayoutBatch(
            status=BatchStatus.OPEN,
            source_account=channels[len(batches) % len(channels)],
            lease_owner=run_id,
            lease_expires_at=lease_until,
        )
        db.session.add(batch)
        db.session.flush()
        legs = []
        for account, user in due[start : start + MAX_OPS]:
            db.session.add(
                Payout(
                    id=uuid.uuid4(),
                    creator_id=user.id,
                    destination=user.stellar_address,
                    amount=account.balance,
                    status=PayoutStatus.IN_FLIGHT,
                    batch_id=batch.id,
                )
            )
            legs.append(ledger.Leg(account, -account.balance))
        legs.append(ledger.Leg(in_flight, -sum(leg.amount for leg in legs)))
        ledger.post(legs, f"payout-batch:{batch.id}", "payout_formed", details={"batch_id": batch.id}, commit=False)
        batches.append(batch)
    db.session.commit()
    return [batch.id for batch in batches]


def _refused_since_verified(user_ids: set) -> set:
    """Creators whose latest payout was refused for their own address, which they have not proven since."""
    if not user_ids:
        return set()
    latest = (
        select(Payout.creator_id, func.max(Payout.created_at).label("at"))
        .where(Payout.creator_id.in_(user_ids))
        .group_by(Payout.creator_id)
        .subquery()
    )
    rows = db.session.execute(
        select(Payout, User)
        .join(latest, (Payout.creator_id == latest.c.creator_id) & (Payout.created_at == latest.c.at))
        .join(User, User.id == Payout.creator_id)
    ).all()
    return {
        user.id
        for last, user in rows
        if last.status is PayoutStatus.RETURNED
        and last.refusal is Refusal.RECIPIENT
        and last.destination == user.stellar_address
        and last.created_at > user.stellar_verified_at
    }


def _drain(batch_ids: list[int], run_id: str) -> dict[int, str]:
    """Advance one source account's batches in order, stopping at the first still open."""
    outcomes = {}
    for batch_id in batch_ids:
        outcomes[batch_id] = settle.advance(batch_id, run_id)
        if outcomes[batch_id] in (settle.WAITING, settle.HELD):
            break  # keep this account's sequence numbers in order: wait for this one
    return outcomes


def _in_parallel(batch_ids: list[int], run_id: str) -> dict[int, str]:
    """One worker per source account (channel): their sequence numbers are independent."""
    sources = dict(
        db.session.execute(
            select(PayoutBatch.id, PayoutBatch.source_account).where(PayoutBatch.id.in_(batch_ids))
        ).all()
    )
    db.session.commit()  # hold no transaction while the batches talk to Horizon
    by_source: dict[str, list[int]] = {}
    for batch_id in sorted(batch_ids):
        by_source.setdefault(sources[batch_id], []).append(batch_id)
    if len(by_source) <= 1:
        return {k: v for ids in by_source.values() for k, v in _drain(ids, run_id).items()}
    app = current_app._get_current_object()

    def work(ids: list[int]) -> dict[int, str]:
        with app.app_context():
            try:
                return _drain(ids, run_id)
            finally:
                db.session.remove()

    outcomes: dict[int, str] = {}
    with ThreadPoolExecutor(max_workers=len(by_source), thread_name_prefix="payout-channel") as pool:
        for future in [pool.submit(work, ids) for ids in by_source.values()]:
            outcomes.update(future.result())
    return outcomes


def _release_all(run_id: str) -> None:
    """Free every batch this run still holds (formed but not reached), for the next run to take."""
    db.session.rollback()
    db.session.execute(
        update(PayoutBatch)
        .where(PayoutBatch.lease_owner == run_id)
        .values(lease_owner=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def _open_batch_ids() -> list[int]:
    ids = list(
        db.session.scalars(
            select(PayoutBatch.id).where(PayoutBatch.status == BatchStatus.OPEN).order_by(PayoutBatch.id)
        )
    )
    db.session.commit()
    return ids


def run() -> dict:
    """Settle what is open, then pay everyone who is due. Idempotent; runs may overlap safely."""
    horizon.custody()
    run_id = str(uuid.uuid4())
    outcomes: dict[int, str] = {}
    try:
        if open_ids := _open_batch_ids():
            outcomes.update(_in_parallel(open_ids, run_id))
        # New batches once nothing is open; not after a batch was refused in this run, so a short custody
        # account is not sent a second failing envelope (and fee) before an operator can fund it.
        if not _open_batch_ids() and all(o == BatchStatus.CONFIRMED.value for o in outcomes.values()):
            outcomes.update(_in_parallel(form_batches(run_id), run_id))
    except BaseRequestError as exc:
        db.session.rollback()
        raise horizon.HorizonUnavailable("Horizon did not answer; the payout run will pick up from here.") from exc
    finally:
        _release_all(run_id)
    held = sorted(batch_id for batch_id, outcome in outcomes.items() if outcome == settle.HELD)
    for batch_id in held:
        log.info("payout batch held by another run", extra={"batch_id": batch_id})
    db.session.expire_all()
    return {**summary(), "held_by_another_run": held}


def summary() -> dict:
    counts = {s.value: 0 for s in PayoutStatus}
    for status, n in db.session.execute(select(Payout.status, func.count()).group_by(Payout.status)):
        counts[status.value] = n
    counts["open_batches"] = db.session.scalar(
        select(func.count()).select_from(PayoutBatch).where(PayoutBatch.status == BatchStatus.OPEN)
    )
    counts["at"] = utcnow().isoformat()
    db.session.commit()
    return counts


def status(limit: int = 20) -> dict:
    """What an operator needs to see: open batches and their envelopes, recent payouts and why."""
    batches = []
    for batch in db.session.scalars(select(PayoutBatch).where(PayoutBatch.status == BatchStatus.OPEN)):
        attempts = db.session.scalars(
            select(PayoutAttempt).where(PayoutAttempt.batch_id == batch.id).order_by(PayoutAttempt.id)
        )
        batches.append(
            {
                "batch": batch.id,
                "source_account": batch.source_account,
                "held_until": batch.lease_expires_at.isoformat() if batch.lease_owner else None,
                "envelopes": [
                    {
                        "tx_hash": a.tx_hash,
                        "sequence": str(a.sequence),
                        "max_time": a.max_time,
                        "payments": len(a.payout_ids),
                        "submissions": a.submissions,
                        "last_result": a.last_result,
                    }
                    for a in attempts
                ],
            }
        )
    recent = db.session.execute(
        select(Payout, User.email)
        .join(User, User.id == Payout.creator_id)
        .order_by(Payout.created_at.desc(), Payout.id)
        .limit(limit)
    ).all()
    waiting = _refused_since_verified(set(db.session.scalars(select(Payout.creator_id).distinct())))
    report = {
        "summary": summary(),
        "open_batches": batches,
        "waiting_for_address_proof": sorted(
            db.session.scalars(select(User.email).where(User.id.in_(waiting))) if waiting else []
        ),
        "recent": [
            {
                "creator": email,
                "amount": money.format(p.amount),
                "status": p.status.value,
                "batch": p.batch_id,
                "tx_hash": p.tx_hash,
                "refusal": p.refusal.value if p.refusal else None,
                "reason": p.reason,
                "at": p.created_at.isoformat(),
            }
            for p, email in recent
        ],
    }
    db.session.commit()
    return report
