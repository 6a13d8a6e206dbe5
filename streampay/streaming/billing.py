"""Pure arithmetic of a bill, in integer stroops and milliseconds.

Rounding is cumulative: every checkpoint recomputes the session's total charge and total fee
from its total billed milliseconds and posts only the difference from what was already
posted, so no stroop is lost or invented however many checkpoints there are.
"""

from __future__ import annotations


def charge_for(billed_ms: int, price_per_second: int) -> int:
    """Total charge for billed time: rounded down to the stroop."""
    return billed_ms * price_per_second // 1000


def fee_for(charge: int, fee_bps: int) -> int:
    """The platform's part of a total charge: rounded down, so the creator keeps the remainder."""
    return charge * fee_bps // 10_000


def ms_affordable(total_charge_allowed: int, price_per_second: int) -> int:
    """The longest billed time whose total charge stays within `total_charge_allowed`."""
    return ((total_charge_allowed + 1) * 1000 - 1) // price_per_second
