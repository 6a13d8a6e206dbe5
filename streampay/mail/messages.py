"""What each mailed event says. Each kind can be turned off by its user (PATCH /users/me)."""

from __future__ import annotations

from dataclasses import dataclass

from streampay.users.models import MAIL_KINDS

# event type -> the kind of mail a user turns off
KINDS = dict(zip(("balance.low", "payout.paid", "payout.refused"), MAIL_KINDS, strict=True))


@dataclass(frozen=True)
class Letter:
    subject: str
    body: str


def compose(event_type: str, data: dict, name: str) -> Letter:
    if event_type == "balance.low":
        return Letter(
            "Your StreamPay balance is running low",
            f"Hello {name},\n\nYour balance is {data['balance']}: about {data['runway_seconds']} more seconds of "
            "what you are watching. Top it up with a deposit to your memo (see your wallet) to keep watching.\n",
        )
    if event_type == "payout.paid":
        return Letter(
            f"Payout sent: {data['amount']}",
            f"Hello {name},\n\nWe paid {data['amount']} to {data['destination']}.\n"
            f"Transaction: {data['tx_hash']} (ledger {data['ledger']}).\n",
        )
    return Letter(
        f"Payout not sent: {data['amount']}",
        f"Hello {name},\n\nYour payout of {data['amount']} to {data['destination']} was not sent: "
        f"{data.get('reason') or 'refused'}.\n\nWhat to do: {data['what_to_do']}\n",
    )
