"""Advancing one payout batch: one run at a time, and nothing held open while Horizon answers.

Why a batch can never pay twice:
- A batch's envelopes (attempts) are signed and stored before any is sent, and every one that is
  not provably dead shares one sequence number: a new envelope either reuses that number (so at
  most one of them can land) or is built only when every earlier one is dead — its time bounds
  passed by the network's clock (read *before* the hashes are looked up), and its hash unknown to
  Horizon, or it failed in a ledger and spent its sequence number.
- One run advances a batch at a time: it claims a lease on the batch's row, and every write it
  makes is fenced — the row is updated only if this run still holds the lease — so a run that
  stalled past its lease, while another took over, can record nothing built on what it saw.
- Each step reads a snapshot and ends that transaction, talks to Horizon, then writes in a new,
  short transaction: no database transaction is open while Horizon is waited for.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import or_, select, update
from stellar_sdk import FeeBumpTransactionEnvelope, TransactionEnvelope
from stellar_sdk.exceptions import BadRequestError, BaseRequestError, NotFoundError

from streampay.dbtypes import utcnow
from streampay.extensions import db
from streampay.ledger import service as ledger
from streampay.ledger.models import AccountKind
from streampay.stellar import envelopes, events, horizon, outcomes
from streampay.stellar.models import BatchStatus, Payout, PayoutAttempt, PayoutBatch, PayoutStatus, Refusal

log = logging.getLogger(__name__)
FAILED_IN_LEDGER = "failed in ledger"
REFUSED_REASON = "refused by the network: "
# Outcomes of advance(): the batch is done (CONFIRMED, CLOSED), waits for a later run, or is another run's.
WAITING, HELD = "waiting", "held"
MAX_STEPS = 2 * envelopes.MAX_OPS + 4  # each step refuses at least one recipient, or ends the call


class LeaseLost(Exception):
    """Another run advances this batch now: change nothing, leave it to that run."""


@dataclass(frozen=True)
class AttemptView:
    id: int
    tx_hash: str
    envelope_xdr: str
    sequence: int
    max_time: int
    payout_ids: tuple[str, ...]
    failed: bool


@dataclass(frozen=True)
class BatchView:
    id: int
    status: BatchStatus
    source_account: str
    attempts: tuple[AttemptView, ...]
    payouts: dict[str, tuple[str, int, PayoutStatus]]  # id -> destination, stroops, status

    def with_status(self, *statuses: PayoutStatus) -> list[str]:
        return [pid for pid, (_, _, status) in self.payouts.items() if status in statuses]


def lease_duration() -> timedelta:
    return timedelta(seconds=current_app.config["PAYOUT_LEASE_SECONDS"])


def claim(batch_id: int, run_id: str) -> bool:
    """Take the batch's lease if it is free, expired or already this run's."""
    now = utcnow()
    result = db.session.execute(
        update(PayoutBatch)
        .where(
            PayoutBatch.id == batch_id,
            PayoutBatch.status == BatchStatus.OPEN,
            or_(
                PayoutBatch.lease_owner.is_(None),
                PayoutBatch.lease_owner == run_id,
                PayoutBatch.lease_expires_at < now,
            ),
        )
        .values(lease_owner=run_id, lease_expires_at=now + lease_duration())
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount == 1


def release(batch_id: int, run_id: str) -> None:
    db.session.rollback()
    db.session.execute(
        update(PayoutBatch)
        .where(PayoutBatch.id == batch_id, PayoutBatch.lease_owner == run_id)
        .values(lease_owner=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


@contextmanager
def fenced(batch_id: int, run_id: str) -> Iterator[PayoutBatch]:
    """One database step of the run that holds the lease: the batch row locked, the lease renewed."""
    result = db.session.execute(
        update(PayoutBatch)
        .where(PayoutBatch.id == batch_id, PayoutBatch.lease_owner == run_id)
        .values(lease_expires_at=utcnow() + lease_duration())
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        db.session.rollback()
        raise LeaseLost(batch_id)
    try:
        yield db.session.get(PayoutBatch, batch_id, populate_existing=True)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise


def snapshot(batch_id: int) -> BatchView:
    """What the batch is now, as plain values; the read's transaction is over when this returns."""
    batch = db.session.get(PayoutBatch, batch_id, populate_existing=True)
    attempts = db.session.scalars(
        select(PayoutAttempt).where(PayoutAttempt.batch_id == batch_id).order_by(PayoutAttempt.id)
    )
    payouts = db.session.scalars(
        select(Payout).where(Payout.batch_id == batch_id).order_by(Payout.created_at, Payout.id)
    )
    view = BatchView(
        id=batch.id,
        status=batch.status,
        source_account=batch.source_account,
        attempts=tuple(
            AttemptView(
                a.id,
                a.tx_hash,
                a.envelope_xdr,
                a.sequence,
                a.max_time,
                tuple(a.payout_ids),
                a.last_result == FAILED_IN_LEDGER,
            )
            for a in attempts
        ),
        payouts={str(p.id): (p.destination, p.amount, p.status) for p in payouts},
    )
    db.session.commit()
    return view


def advance(batch_id: int, run_id: str) -> str:
    """Move one batch as far as it goes now; safe to call from any number of runs at once."""
    if not claim(batch_id, run_id):
        return HELD
    try:
        for _ in range(MAX_STEPS):
            outcome = _step(snapshot(batch_id), run_id)
            if outcome is not None:
                return outcome
        return WAITING
    except LeaseLost:
        log.warning("payout batch taken over by another run", extra={"batch_id": batch_id})
        return HELD
    finally:
        release(batch_id, run_id)


def _step(view: BatchView, run_id: str) -> str | None:
    """One decision on a fresh snapshot: an outcome, or None to look again."""
    if view.status is not BatchStatus.OPEN:
        return view.status.value
    # The network's clock first: an envelope whose bounds had passed by then cannot land later, and
    # if it landed before, the lookups below see it.
    network_time = horizon.latest_ledger_time()
    for attempt in reversed(view.attempts):
        if attempt.failed:
            continue
        record = _lookup(attempt.tx_hash)
        if record is None:
            continue
        if record.get("successful", True):
            with fenced(view.id, run_id) as batch:
                _confirm(batch, attempt, record.get("ledger"))
            return BatchStatus.CONFIRMED.value
        with fenced(view.id, run_id):
            db.session.get(PayoutAttempt, attempt.id).last_result = FAILED_IN_LEDGER
        return None
    spent = {a.sequence for a in view.attempts if a.failed}
    alive = [a for a in view.attempts if not a.failed and a.sequence not in spent and a.max_time >= network_time]
    in_flight = set(view.with_status(PayoutStatus.IN_FLIGHT))
    if alive:
        newest = alive[-1]
        if in_flight.issuperset(newest.payout_ids):
            return _send(view, newest, run_id)
        if not in_flight:
            return WAITING  # everything left was refused: it is returned once these envelopes are dead
        # Some of the newest were refused before the ledger: the others go at once, on the same sequence.
        return _send(view, _build(view, run_id, in_flight, newest.sequence, network_time), run_id)
    with fenced(view.id, run_id) as batch:
        for payout in _payouts(batch, PayoutStatus.REFUSED):
            _return(payout, payout.reason or "refused by the network")
        if not in_flight:
            batch.move_to(BatchStatus.CLOSED)
            return BatchStatus.CLOSED.value
    sequence = int(horizon.load_account_record(view.source_account)["sequence"]) + 1
    return _send(view, _build(view, run_id, in_flight, sequence, network_time), run_id)


def _payouts(batch: PayoutBatch, *statuses: PayoutStatus) -> list[Payout]:
    stmt = select(Payout).where(Payout.batch_id == batch.id).order_by(Payout.created_at, Payout.id)
    if statuses:
        stmt = stmt.where(Payout.status.in_(statuses))
    return list(db.session.scalars(stmt))


def _lookup(tx_hash: str) -> dict | None:
    try:
        return horizon.call(lambda s: s.transactions().transaction(tx_hash).call())
    except NotFoundError:
        return None


def _build(view: BatchView, run_id: str, payout_ids: set[str], sequence: int, network_time: int) -> AttemptView:
    """Sign an envelope for these payouts and store it, fenced, before it is ever sent."""
    ordered = [pid for pid in view.payouts if pid in payout_ids]
    max_time = network_time + current_app.config["PAYOUT_TX_TIMEOUT"]
    envelope = envelopes.sign(
        envelopes.source_for(view.source_account),
        [view.payouts[pid][:2] for pid in ordered],
        sequence,
        max_time,
    )
    with fenced(view.id, run_id):
        attempt = db.session.scalar(select(PayoutAttempt).where(PayoutAttempt.tx_hash == envelope.hash_hex()))
        if attempt is None:
            attempt = PayoutAttempt(
                batch_id=view.id,
                tx_hash=envelope.hash_hex(),
                envelope_xdr=envelope.to_xdr(),
                sequence=sequence,
                max_time=max_time,
                payout_ids=ordered,
                submissions=0,
            )
            db.session.add(attempt)
            db.session.flush()
        return AttemptView(attempt.id, attempt.tx_hash, attempt.envelope_xdr, sequence, max_time, tuple(ordered), False)


def _parse(xdr: str):
    if FeeBumpTransactionEnvelope.is_fee_bump_transaction_envelope(xdr):
        return FeeBumpTransactionEnvelope.from_xdr(xdr, horizon.passphrase())
    return TransactionEnvelope.from_xdr(xdr, horizon.passphrase())


def _send(view: BatchView, attempt: AttemptView, run_id: str) -> str | None:
    with fenced(view.id, run_id):
        db.session.get(PayoutAttempt, attempt.id).submissions += 1
    envelope = _parse(attempt.envelope_xdr)
    try:
        reply = horizon.call(lambda s: s.submit_transaction(envelope, skip_memo_required_check=True))
    except BadRequestError as error:
        return _refused(view, attempt, outcomes.read(error), run_id)
    except BaseRequestError as error:
        # Timeout, 5xx, 429, a dropped connection: unknown until the hash is looked up, next time.
        with fenced(view.id, run_id):
            db.session.get(PayoutAttempt, attempt.id).last_result = type(error).__name__
        return WAITING
    with fenced(view.id, run_id) as batch:
        _confirm(batch, attempt, reply.get("ledger"))
    return BatchStatus.CONFIRMED.value


def _refused(view: BatchView, attempt: AttemptView, verdict: outcomes.Verdict, run_id: str) -> str | None:
    # A transaction that failed in a ledger spent its sequence number: nothing else of that number can land.
    in_ledger = verdict.tx_code == "tx_failed" and _lookup(attempt.tx_hash) is not None
    with fenced(view.id, run_id):
        row = db.session.get(PayoutAttempt, attempt.id)
        row.last_result = FAILED_IN_LEDGER if in_ledger else verdict.summary[:200]
        ids = attempt.payout_ids
        if verdict.action is outcomes.Action.REFUSE_RECIPIENT:
            for index in verdict.refused_ops:
                if index < len(ids):
                    _refuse(ids[index], Refusal.RECIPIENT, f"{REFUSED_REASON}{verdict.op_codes[index]}")
        elif verdict.action is outcomes.Action.REFUSE_BATCH:
            for pid in ids:
                _refuse(pid, Refusal.BATCH, f"{REFUSED_REASON}{verdict.summary}")
    log.warning(
        "payout envelope refused",
        extra={"batch_id": view.id, "tx_hash": attempt.tx_hash, "result": verdict.summary, "action": verdict.action},
    )
    if in_ledger or verdict.action is outcomes.Action.REFUSE_RECIPIENT:
        return None  # look again: rebuild without the refused, or settle what is dead
    return WAITING


def _refuse(payout_id: str, refusal: Refusal, reason: str) -> None:
    payout = db.session.get(Payout, uuid.UUID(payout_id))
    if payout is not None and payout.status is PayoutStatus.IN_FLIGHT:
        payout.move_to(PayoutStatus.REFUSED)
        payout.refusal, payout.reason = refusal, reason[:200]


def _confirm(batch: PayoutBatch, attempt: AttemptView, ledger_seq: int | None) -> None:
    """The attempt landed: its payments are paid (one posting), anything else of the batch goes back."""
    if batch.status is not BatchStatus.OPEN:
        return
    in_attempt = set(attempt.payout_ids)
    paid = []
    for payout in _payouts(batch, PayoutStatus.IN_FLIGHT, PayoutStatus.REFUSED):
        if str(payout.id) in in_attempt:
            payout.move_to(PayoutStatus.PAID)
            payout.tx_hash, payout.ledger, payout.reason, payout.refusal = attempt.tx_hash, ledger_seq, None, None
            paid.append(payout)
            events.payout_paid(payout)
        else:
            _return(payout, payout.reason or "not in the transaction that landed")
    if paid:
        total = sum(p.amount for p in paid)
        ledger.post(
            [
                ledger.Leg(ledger.platform(AccountKind.PAYOUTS_IN_FLIGHT), -total),
                ledger.Leg(ledger.platform(AccountKind.CUSTODY), total),
            ],
            f"payout-paid:{attempt.tx_hash}",
            "payout_confirmed",
            details={"batch_id": batch.id, "tx_hash": attempt.tx_hash, "payouts": len(paid)},
            commit=False,
        )
    batch.move_to(BatchStatus.CONFIRMED)
    batch.tx_hash, batch.ledger = attempt.tx_hash, ledger_seq
    log.info("payout batch confirmed", extra={"batch_id": batch.id, "tx_hash": attempt.tx_hash})


def _return(payout: Payout, reason: str) -> None:
    """Earnings back to the creator; a refusal of the batch (or none) leaves them due at the next run."""
    if payout.status is PayoutStatus.IN_FLIGHT:
        payout.move_to(PayoutStatus.REFUSED)
    payout.move_to(PayoutStatus.RETURNED)
    payout.reason = reason[:200]
    events.payout_refused(payout)
    ledger.post(
        [
            ledger.Leg(ledger.platform(AccountKind.PAYOUTS_IN_FLIGHT), -payout.amount),
            ledger.Leg(ledger.earnings(payout.creator_id), payout.amount),
        ],
        f"payout-return:{payout.id}",
        "payout_returned",
        details={"payout_id": str(payout.id), "batch_id": payout.batch_id, "reason": payout.reason},
        commit=False,
    )
