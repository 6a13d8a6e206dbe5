"""Payouts: batched, exactly-once payments of creator earnings on Stellar.

The rules that make a payment happen at most once:
- a payout belongs to one batch; a batch's envelopes (attempts) are stored, signed, before
  any is sent, and can always be looked up by hash afterwards;
- a new envelope for a batch either reuses the sequence number of the ones that might still
  land (so at most one of them can), or is built only when every earlier one is provably dead:
  its time bounds have passed by the network's clock and Horizon does not know its hash;
- on a timeout, a 5xx, a dropped connection or a retryable result, the same envelope is
  looked up, then resubmitted; nothing new is built while it might still land.
"""

from __future__ import annotations

import logging
import uuid
from concurrent.futures import ThreadPoolExecutor

from flask import current_app
from sqlalchemy import func, select
from stellar_sdk import Account as StellarAccount
from stellar_sdk import FeeBumpTransactionEnvelope, Keypair, TransactionBuilder, TransactionEnvelope
from stellar_sdk.exceptions import BadRequestError, BaseRequestError, NotFoundError

from streampay import money
from streampay.dbtypes import utcnow
from streampay.errors import DomainError
from streampay.extensions import db
from streampay.ledger import service as ledger
from streampay.ledger.models import Account, AccountKind
from streampay.stellar import horizon
from streampay.stellar.models import BatchStatus, Payout, PayoutAttempt, PayoutBatch, PayoutStatus
from streampay.users.models import User

log = logging.getLogger(__name__)
MAX_OPS = 100
# Per-recipient refusals: the other payments of the batch go ahead without these.
RECIPIENT_FINAL = {
    "op_no_destination",
    "op_no_trust",
    "op_not_authorized",
    "op_line_full",
    "op_no_issuer",
    "op_malformed",
}
# The whole envelope can never be valid: every payment in it is refused.
BATCH_FINAL_TX = {"tx_bad_auth", "tx_bad_auth_extra", "tx_no_source_account", "tx_malformed"}
BATCH_FINAL_OP = {"op_underfunded", "op_src_no_trust", "op_src_not_authorized"}


def _payouts(batch: PayoutBatch, *statuses: PayoutStatus) -> list[Payout]:
    stmt = select(Payout).where(Payout.batch_id == batch.id).order_by(Payout.created_at, Payout.id)
    if statuses:
        stmt = stmt.where(Payout.status.in_(statuses))
    return list(db.session.scalars(stmt))


def form_batches() -> list[PayoutBatch]:
    """Move every eligible creator's earnings to payouts in flight, in batches of at most 100.

    One balanced posting per batch (a leg per creator), idempotent by batch.
    """
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
        .with_for_update(of=Account)  # a concurrent run waits, then finds these balances spent
    ).all()
    refused = _refused_since_verified({user.id for _, user in due})
    due = [(account, user) for account, user in due if user.id not in refused]
    in_flight = ledger.platform(AccountKind.PAYOUTS_IN_FLIGHT)
    channels = [keypair.public_key for keypair in sources()]
    batches: list[PayoutBatch] = []
    for start in range(0, len(due), MAX_OPS):
        batch = PayoutBatch(status=BatchStatus.OPEN, source_account=channels[len(batches) % len(channels)])
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
    return batches


def _refused_since_verified(user_ids: set) -> set:
    """Creators whose latest payout the network refused at the address they still have linked."""
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
        and last.destination == user.stellar_address
        and (last.reason or "").startswith(REFUSED_REASON)
        and last.created_at > user.stellar_verified_at
    }


def sign_envelope(source: Keypair, payments: list[tuple[str, int]], sequence: int, max_time: int):
    """One transaction paying (destination, stroops) pairs from custody, signed.

    `source` is the transaction's source: custody itself, or a channel account whose sequence
    number it uses while custody remains the source of every payment (and signs for them).
    With STELLAR_FEE_BUMP the custody account wraps it and pays the fee.
    """
    custody = horizon.custody()
    builder = TransactionBuilder(
        StellarAccount(source.public_key, sequence - 1), horizon.passphrase(), base_fee=horizon.base_fee()
    )
    builder.add_time_bounds(0, max_time)
    pay_in = horizon.asset()
    op_source = None if source.public_key == custody.public_key else custody.public_key
    for destination, stroops in payments:
        builder.append_payment_op(destination, pay_in, money.format(stroops), source=op_source)
    envelope = builder.build()
    envelope.sign(source)
    if op_source is not None:
        envelope.sign(custody)
    if current_app.config["STELLAR_FEE_BUMP"]:
        envelope = TransactionBuilder.build_fee_bump_transaction(
            custody, horizon.base_fee(), envelope, horizon.passphrase()
        )
        envelope.sign(custody)
    return envelope


def sources() -> list[Keypair]:
    """The accounts whose sequence numbers payout transactions use: the channels, or custody alone."""
    channels = current_app.config.get("STELLAR_CHANNEL_SECRETS") or []
    return [Keypair.from_secret(secret) for secret in channels] or [horizon.custody()]


def _source_for(batch: PayoutBatch) -> Keypair:
    for keypair in sources():
        if keypair.public_key == batch.source_account:
            return keypair
    raise DomainError(f"Batch {batch.id} was formed for a channel account that is no longer configured.")


def _build(batch: PayoutBatch, payouts: list[Payout], sequence: int | None = None) -> PayoutAttempt:
    """Sign an envelope and store it (committed) before anything is sent."""
    source = _source_for(batch)
    if sequence is None:
        record = horizon.load_account_record(source.public_key)
        sequence = int(record["sequence"]) + 1
    # Bounds by the network's clock, the clock that later decides whether they have passed.
    max_time = horizon.latest_ledger_time() + current_app.config["PAYOUT_TX_TIMEOUT"]
    envelope = sign_envelope(source, [(p.destination, p.amount) for p in payouts], sequence, max_time)
    same = db.session.scalar(select(PayoutAttempt).where(PayoutAttempt.tx_hash == envelope.hash_hex()))
    if same is not None:
        return same  # the very envelope already stored: sending it again is safe
    attempt = PayoutAttempt(
        batch_id=batch.id,
        tx_hash=envelope.hash_hex(),
        envelope_xdr=envelope.to_xdr(),
        sequence=sequence,
        max_time=max_time,
        payout_ids=[str(p.id) for p in payouts],
        submissions=0,
    )
    db.session.add(attempt)
    db.session.commit()
    return attempt


def _lookup(tx_hash: str) -> dict | None:
    try:
        return horizon.call(lambda s: s.transactions().transaction(tx_hash).call())
    except NotFoundError:
        return None


def _confirm(batch: PayoutBatch, attempt: PayoutAttempt, ledger_seq: int | None) -> None:
    """The attempt landed: its payments are paid (one posting), anything else of the batch goes back."""
    in_attempt = set(attempt.payout_ids)
    paid = []
    for payout in _payouts(batch, PayoutStatus.IN_FLIGHT, PayoutStatus.REFUSED):
        if str(payout.id) in in_attempt:
            payout.move_to(PayoutStatus.PAID)
            payout.tx_hash, payout.ledger, payout.reason = attempt.tx_hash, ledger_seq, None
            paid.append(payout)
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
    db.session.commit()
    log.info("payout batch confirmed", extra={"batch_id": batch.id, "tx_hash": attempt.tx_hash})


def _return(payout: Payout, reason: str) -> None:
    if payout.status is PayoutStatus.IN_FLIGHT:
        payout.move_to(PayoutStatus.REFUSED)
    payout.move_to(PayoutStatus.RETURNED)
    payout.reason = reason[:200]
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


def _refuse(payouts: list[Payout], reason: str) -> None:
    for payout in payouts:
        if payout.status is PayoutStatus.IN_FLIGHT:
            payout.move_to(PayoutStatus.REFUSED)
            payout.reason = reason[:200]


FAILED_IN_LEDGER = "failed in ledger"
REFUSED_REASON = "refused by the network: "


def _submit(batch: PayoutBatch, attempt: PayoutAttempt, depth: int = 0) -> None:
    attempt.submissions += 1
    db.session.commit()
    try:
        envelope = _parse(attempt.envelope_xdr)
        reply = horizon.call(lambda s: s.submit_transaction(envelope, skip_memo_required_check=True))
    except BadRequestError as error:
        _refused(batch, attempt, error, depth)
        return
    except BaseRequestError as error:
        # Timeout, 5xx, dropped connection: the outcome is unknown until the hash is looked up.
        attempt.last_result = type(error).__name__
        db.session.commit()
        return
    _confirm(batch, attempt, reply.get("ledger"))


def _parse(xdr: str):
    if FeeBumpTransactionEnvelope.is_fee_bump_transaction_envelope(xdr):
        return FeeBumpTransactionEnvelope.from_xdr(xdr, horizon.passphrase())
    return TransactionEnvelope.from_xdr(xdr, horizon.passphrase())


def _refused(batch: PayoutBatch, attempt: PayoutAttempt, error: BadRequestError, depth: int) -> None:
    tx_code, op_codes = horizon.result_codes(error)
    attempt.last_result = (tx_code or error.title or str(error.status))[:200]
    in_attempt = [p for p in _payouts(batch, PayoutStatus.IN_FLIGHT) if str(p.id) in set(attempt.payout_ids)]
    code_of = dict(zip(attempt.payout_ids, op_codes, strict=False))
    if tx_code in BATCH_FINAL_TX or any(code in BATCH_FINAL_OP for code in op_codes):
        _refuse(in_attempt, f"{REFUSED_REASON}{tx_code} {' '.join(sorted(set(op_codes) - {'op_success'}))}")
    elif tx_code == "tx_failed" and any(code in RECIPIENT_FINAL for code in op_codes):
        for payout in in_attempt:
            if code_of.get(str(payout.id)) in RECIPIENT_FINAL:
                _refuse([payout], f"{REFUSED_REASON}{code_of[str(payout.id)]}")
    else:
        db.session.commit()  # retryable (bad_seq, too_late, fees, rate limits): it may still land; wait
        return
    db.session.commit()
    if depth >= MAX_OPS:
        return
    if tx_code == "tx_failed" and _lookup(attempt.tx_hash) is not None:
        # Applied as failed: its sequence is spent, so nothing of this batch can land any more.
        attempt.last_result = FAILED_IN_LEDGER
        db.session.commit()
        advance(batch, depth + 1)
    elif tx_code == "tx_failed" and (remaining := _payouts(batch, PayoutStatus.IN_FLIGHT)):
        # Rejected before the ledger: the same sequence number means this and the next cannot both land.
        _submit(batch, _build(batch, remaining, sequence=attempt.sequence), depth + 1)


def advance(batch: PayoutBatch, depth: int = 0) -> None:
    """Move one open batch as far as it can go now; safe to call any number of times."""
    attempts = list(
        db.session.scalars(select(PayoutAttempt).where(PayoutAttempt.batch_id == batch.id).order_by(PayoutAttempt.id))
    )
    for attempt in reversed(attempts):
        record = _lookup(attempt.tx_hash)
        if record is not None and record.get("successful", True):
            _confirm(batch, attempt, record.get("ledger"))
            return
        if record is not None:
            attempt.last_result = FAILED_IN_LEDGER
    network_time = horizon.latest_ledger_time()
    might_land = [a for a in attempts if a.last_result != FAILED_IN_LEDGER and a.max_time >= network_time]
    if might_land:
        db.session.commit()
        if _payouts(batch, PayoutStatus.IN_FLIGHT):
            _submit(batch, might_land[-1], depth)
        return
    # Every envelope so far is provably dead: refusals are final, and the rest get a new envelope.
    for payout in _payouts(batch, PayoutStatus.REFUSED):
        _return(payout, payout.reason or "refused by the network")
    remaining = _payouts(batch, PayoutStatus.IN_FLIGHT)
    if not remaining:
        batch.move_to(BatchStatus.CLOSED)
        db.session.commit()
        return
    db.session.commit()
    _submit(batch, _build(batch, remaining), depth)


def _drain(batch_ids: list[int]) -> None:
    """Advance one source account's batches in order, stopping at the first still open."""
    for batch_id in batch_ids:
        batch = db.session.get(PayoutBatch, batch_id)
        advance(batch)
        if batch.status is BatchStatus.OPEN:
            break  # keep this account's sequence numbers in order: wait for this one


def _in_parallel(batches: list[PayoutBatch]) -> None:
    """One worker per source account (channel): their sequence numbers are independent."""
    by_source: dict[str, list[int]] = {}
    for batch in batches:
        by_source.setdefault(batch.source_account, []).append(batch.id)
    if len(by_source) <= 1:
        for ids in by_source.values():
            _drain(ids)
        return
    app = current_app._get_current_object()
    db.session.commit()  # hold no transaction (on SQLite, no write lock) while the workers run

    def work(ids: list[int]) -> None:
        with app.app_context():
            try:
                _drain(ids)
            finally:
                db.session.remove()

    with ThreadPoolExecutor(max_workers=len(by_source), thread_name_prefix="payout-channel") as pool:
        for future in [pool.submit(work, ids) for ids in by_source.values()]:
            future.result()


def _open_batches() -> list[PayoutBatch]:
    return list(
        db.session.scalars(select(PayoutBatch).where(PayoutBatch.status == BatchStatus.OPEN).order_by(PayoutBatch.id))
    )


def run() -> dict:
    """Settle what is open, then pay everyone who is due. Idempotent; one run at a time is enough."""
    horizon.custody()
    try:
        if open_batches := _open_batches():
            db.session.commit()
            _in_parallel(open_batches)
        if not _open_batches():
            formed = form_batches()
            _in_parallel(formed)
    except BaseRequestError as exc:
        db.session.rollback()
        raise horizon.HorizonUnavailable("Horizon did not answer; the payout run will pick up from here.") from exc
    db.session.expire_all()
    return summary()


def summary() -> dict:
    counts = {s.value: 0 for s in PayoutStatus}
    for (status,) in db.session.execute(select(Payout.status)):
        counts[status.value] += 1
    counts["open_batches"] = len(
        db.session.scalars(select(PayoutBatch.id).where(PayoutBatch.status == BatchStatus.OPEN)).all()
    )
    counts["at"] = utcnow().isoformat()
    return counts
