"""How the payout engine reads Horizon's answer to a submission: one table, one function.

Every result code maps to one of four actions (docs/stellar.md has the table with the why):
- RETRY: the outcome is unknown or only delayed; look the hash up, then send the same envelope again.
- WAIT: the envelope was not applied now but might be later; send the same one until its time
  bounds have passed by the network's clock, then build a new one.
- REFUSE_RECIPIENT: one payment can never reach its destination (no account, no trustline, line
  full): that creator is left out and waits until they prove their address again.
- REFUSE_BATCH: the transaction as a whole cannot pay (custody underfunded, bad signatures, fees):
  its creators get their earnings back and are eligible again at the next run.

A fee-bumped transaction whose inner transaction failed is reported as `tx_fee_bump_inner_failed`
with the inner code beside it: the inner code decides, exactly as for a plain transaction.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from stellar_sdk.exceptions import BadRequestError


class Action(enum.StrEnum):
    RETRY = "retry"
    WAIT = "wait_for_bounds"
    REFUSE_RECIPIENT = "refuse_recipient"
    REFUSE_BATCH = "refuse_batch"


TX_ACTIONS: dict[str, Action] = {
    "tx_too_early": Action.RETRY,
    "tx_internal_error": Action.RETRY,
    "tx_too_late": Action.WAIT,
    "tx_bad_seq": Action.WAIT,
    "tx_bad_minseq_age_or_gap": Action.WAIT,
    "tx_bad_auth": Action.REFUSE_BATCH,
    "tx_bad_auth_extra": Action.REFUSE_BATCH,
    "tx_no_source_account": Action.REFUSE_BATCH,
    "tx_insufficient_balance": Action.REFUSE_BATCH,
    "tx_insufficient_fee": Action.REFUSE_BATCH,
    "tx_missing_operation": Action.REFUSE_BATCH,
    "tx_malformed": Action.REFUSE_BATCH,
    "tx_bad_sponsorship": Action.REFUSE_BATCH,
    "tx_not_supported": Action.REFUSE_BATCH,
    "tx_soroban_invalid": Action.REFUSE_BATCH,
    "tx_frozen_key_accessed": Action.REFUSE_BATCH,
}
# Operation codes of a `tx_failed` transaction; codes not listed (op_success among them) refuse nothing.
OP_ACTIONS: dict[str, Action] = {
    "op_no_destination": Action.REFUSE_RECIPIENT,
    "op_no_trust": Action.REFUSE_RECIPIENT,
    "op_not_authorized": Action.REFUSE_RECIPIENT,
    "op_line_full": Action.REFUSE_RECIPIENT,
    "op_no_issuer": Action.REFUSE_RECIPIENT,
    "op_malformed": Action.REFUSE_RECIPIENT,
    "op_underfunded": Action.REFUSE_BATCH,
    "op_src_no_trust": Action.REFUSE_BATCH,
    "op_src_not_authorized": Action.REFUSE_BATCH,
    "op_no_source_account": Action.REFUSE_BATCH,
    "op_bad_auth": Action.REFUSE_BATCH,
    "op_not_supported": Action.REFUSE_BATCH,
}
FEE_BUMP_INNER_FAILED = "tx_fee_bump_inner_failed"


@dataclass(frozen=True)
class Verdict:
    action: Action
    tx_code: str  # the code that decided: the inner one for a fee bump
    op_codes: tuple[str, ...]
    refused_ops: tuple[int, ...] = ()  # indexes of the payments refused for their recipient

    @property
    def summary(self) -> str:
        ops = sorted(set(self.op_codes) - {"op_success"})
        return " ".join([self.tx_code, *ops])


def read(error: BadRequestError) -> Verdict:
    """The verdict on a 400 `transaction_failed` (or any other 400) answer to a submission."""
    codes = (error.extras or {}).get("result_codes") or {}
    tx_code = codes.get("transaction") or f"http_{error.status}"
    if tx_code == FEE_BUMP_INNER_FAILED:
        tx_code = codes.get("inner_transaction") or "tx_failed"
    return judge(tx_code, list(codes.get("operations") or []))


def judge(tx_code: str, op_codes: list[str]) -> Verdict:
    ops = tuple(op_codes)
    if tx_code != "tx_failed":
        # An unknown transaction code (or a 400 without one) might still be valid later: wait it out.
        return Verdict(TX_ACTIONS.get(tx_code, Action.WAIT), tx_code, ops)
    actions = [OP_ACTIONS.get(code) for code in ops]
    if Action.REFUSE_BATCH in actions:
        return Verdict(Action.REFUSE_BATCH, tx_code, ops)
    refused = tuple(i for i, action in enumerate(actions) if action is Action.REFUSE_RECIPIENT)
    if refused:
        return Verdict(Action.REFUSE_RECIPIENT, tx_code, ops, refused)
    return Verdict(Action.WAIT, tx_code, ops)
