"""The ledger checked against the network (`flask stellar reconcile`, daily from the clock).

`flask ledger check` proves the ledger balances with itself; this proves it agrees with the
chain. It reads every payment and transaction of the custody account from Horizon and checks:
- every payment out of custody in the payout asset is exactly one payout recorded as paid (same
  transaction, destination and amount), and every paid payout is on the network;
- every payment into custody is a deposit the ledger knows (credited, unmatched or assigned),
  except those past the deposit scanner's cursor, which are only not yet scanned;
- what the ledger says custody holds equals deposits seen minus payouts paid, as the network
  shows them; and custody's balance on chain equals its opening balance plus everything that
  came in, less everything that went out and the network fees it paid.
Account funding (create_account from or to custody) is listed, never an error.

Each run's figures are kept in Redis (`last_result`) for /metrics, whichever dyno ran it.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field

import redis
from sqlalchemy import select
from stellar_sdk.exceptions import BaseRequestError

from streampay import money
from streampay.extensions import db, redis_client
from streampay.ledger import service as ledger
from streampay.ledger.models import AccountKind
from streampay.stellar import deposits, horizon
from streampay.stellar.models import BatchStatus, Cursor, Deposit, Payout, PayoutAttempt, PayoutBatch, PayoutStatus

log = logging.getLogger(__name__)
PAGE = 200
PAYMENT_TYPES = ("payment", "path_payment_strict_receive", "path_payment_strict_send")
LAST_RESULT = "streampay:reconcile:last"


@dataclass
class Report:
    custody: str
    asset: str
    payouts_matched: int = 0
    deposits_matched: int = 0
    unknown_payments: list[dict] = field(default_factory=list)
    paid_not_on_network: list[dict] = field(default_factory=list)
    not_yet_scanned: list[dict] = field(default_factory=list)
    settling: list[dict] = field(default_factory=list)  # landed, its batch not yet confirmed
    funding: list[dict] = field(default_factory=list)
    opening: int | None = None
    fees: int = 0
    flows_in: int = 0
    flows_out: int = 0
    on_chain: int | None = None
    derived: int | None = None  # what custody's history says it holds on chain
    ledger_custody: int = 0
    network_custody: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        fmt = money.format
        return {
            "ok": self.ok,
            "custody": self.custody,
            "asset": self.asset,
            "problems": self.problems,
            "payouts_matched": self.payouts_matched,
            "deposits_matched": self.deposits_matched,
            "unknown_payments": self.unknown_payments,
            "paid_not_on_network": self.paid_not_on_network,
            "not_yet_scanned": self.not_yet_scanned,
            "landed_not_yet_confirmed": self.settling,
            "funding": self.funding,
            "balance": {
                "on_chain": fmt(self.on_chain) if self.on_chain is not None else None,
                "ledger_custody": fmt(self.ledger_custody),
                "deposits_less_payouts_on_network": fmt(self.network_custody),
                "opening": fmt(self.opening) if self.opening is not None else None,
                "in": fmt(self.flows_in),
                "out": fmt(self.flows_out),
                "network_fees": fmt(self.fees),
            },
        }


def _all(request) -> list[dict]:
    """Every record of a Horizon collection, oldest first."""
    records, cursor = [], ""
    while True:
        page = horizon.call(lambda s, cursor=cursor: request(s).order(desc=False).limit(PAGE).cursor(cursor).call())
        batch = page["_embedded"]["records"]
        records.extend(batch)
        if len(batch) < PAGE:
            return records
        cursor = batch[-1]["paging_token"]


def _row(record: dict, **extra) -> dict:
    return {
        "operation_id": record["id"],
        "tx_hash": record.get("transaction_hash"),
        "type": record.get("type"),
        "from": record.get("from") or record.get("funder"),
        "to": record.get("to") or record.get("account"),
        "amount": record.get("amount") or record.get("starting_balance"),
        **extra,
    }


def reconcile() -> Report:
    custody = horizon.custody().public_key
    wanted = horizon.asset()
    report = Report(custody=custody, asset="XLM" if wanted.is_native() else f"{wanted.code}:{wanted.issuer}")
    # What the ledger knows, read first and the transaction ended: nothing is held while Horizon answers.
    paid = Counter(
        (p.tx_hash, p.destination, p.amount)
        for p in db.session.scalars(select(Payout).where(Payout.status == PayoutStatus.PAID))
    )
    known_deposits = dict(db.session.execute(select(Deposit.operation_id, Deposit.amount)).all())
    # An envelope of a batch still open may have landed before the run that sent it confirms it.
    settling = set(
        db.session.scalars(
            select(PayoutAttempt.tx_hash)
            .join(PayoutBatch, PayoutBatch.id == PayoutAttempt.batch_id)
            .where(PayoutBatch.status == BatchStatus.OPEN)
        )
    )
    cursor = db.session.get(Cursor, deposits.CURSOR)
    scanned_to = int(cursor.value) if cursor and cursor.value.isdigit() else 0
    report.ledger_custody = -ledger.platform(AccountKind.CUSTODY).balance
    db.session.commit()
    try:
        payments = _all(lambda s: s.payments().for_account(custody))
        transactions = _all(lambda s: s.transactions().for_account(custody).include_failed(True))
        record = horizon.load_account_record(custody)
    except BaseRequestError as exc:
        raise horizon.HorizonUnavailable("Horizon did not answer; reconcile again shortly.") from exc
    if not wanted.is_native():
        report.opening = 0  # an asset only arrives by payments; create_account moves XLM
    _match(report, payments, paid, known_deposits, scanned_to, settling)
    report.fees = sum(int(t["fee_charged"]) for t in transactions if t.get("fee_account") == custody)
    report.on_chain = _balance(record)
    _check_balances(report, wanted.is_native())
    for problem in report.problems:
        log.error("reconcile: %s", problem, extra={"custody": custody})
    _keep(report)
    return report


def _keep(report: Report) -> None:
    """The run's figures, for /metrics on any dyno. A Redis that does not answer costs the metric, not the run."""
    figures = {
        "at": time.time(),
        "ok": report.ok,
        "ledger_vs_network": report.ledger_custody - report.network_custody,
        "chain_vs_history": None if report.derived is None else report.on_chain - report.derived,
        "unknown_payments": len(report.unknown_payments),
        "paid_not_on_network": len(report.paid_not_on_network),
    }
    try:
        redis_client().set(LAST_RESULT, json.dumps(figures))
    except redis.RedisError as exc:
        log.warning("reconcile: its result could not be kept for /metrics (%s)", exc.__class__.__name__)


def last_result() -> dict | None:
    """The latest run's figures (see _keep), or None if none is kept."""
    kept = redis_client().get(LAST_RESULT)
    return json.loads(kept) if kept else None


def _match(
    report: Report, payments: list[dict], paid: Counter, known_deposits: dict, scanned_to: int, settling: set
) -> None:
    custody = report.custody
    unmatched_paid = Counter(paid)
    for record in payments:
        kind = record.get("type")
        if kind == "create_account":
            if not horizon.asset().is_native():
                continue
            amount = money.parse(record["starting_balance"])
            if record.get("account") == custody:
                report.opening = amount
            elif record.get("funder") == custody:
                report.flows_out += amount
                report.funding.append(_row(record))
            continue
        if kind not in PAYMENT_TYPES or not horizon.matches_asset(record):
            continue
        amount = money.parse(record["amount"])
        if record.get("from") == custody:
            report.flows_out += amount
            key = (record.get("transaction_hash"), record.get("to"), amount)
            if unmatched_paid[key] > 0:
                unmatched_paid[key] -= 1
                report.payouts_matched += 1
                report.network_custody -= amount
            elif record.get("transaction_hash") in settling:
                report.settling.append(_row(record))  # the ledger still has it in flight, not out of custody
            else:
                report.unknown_payments.append(_row(record, direction="out"))
        elif record.get("to") == custody:
            report.flows_in += amount
            if known_deposits.get(record["id"]) == amount:
                report.deposits_matched += 1
                report.network_custody += amount
            elif int(record["paging_token"]) > scanned_to:
                report.not_yet_scanned.append(_row(record))
            else:
                report.unknown_payments.append(_row(record, direction="in"))
    for (tx_hash, destination, amount), n in unmatched_paid.items():
        for _ in range(n):
            report.paid_not_on_network.append(
                {"tx_hash": tx_hash, "destination": destination, "amount": money.format(amount)}
            )


def _balance(record: dict) -> int:
    for line in record.get("balances", []):
        if horizon.matches_asset(line):
            return money.parse(line["balance"])
    return 0


def _check_balances(report: Report, native: bool) -> None:
    if report.unknown_payments:
        report.problems.append(f"{len(report.unknown_payments)} payment(s) the ledger does not know")
    if report.paid_not_on_network:
        report.problems.append(f"{len(report.paid_not_on_network)} paid payout(s) not on the network")
    if report.ledger_custody != report.network_custody:
        report.problems.append(
            f"ledger custody {money.format(report.ledger_custody)} is not deposits less payouts on the network "
            f"{money.format(report.network_custody)}"
        )
    if report.opening is None:
        return  # the account's creation is not in the history Horizon keeps: the balance cannot be derived
    report.derived = report.opening + report.flows_in - report.flows_out - (report.fees if native else 0)
    if report.on_chain != report.derived:
        report.problems.append(
            f"custody holds {money.format(report.on_chain)} on chain, "
            f"but its history explains {money.format(report.derived)}"
        )
