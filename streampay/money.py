"""Amounts: integer stroops inside, decimal strings with 7 places at the edges ("12.5000000").

The only place an amount is parsed or formatted. Never a float.
"""

from __future__ import annotations

import re

from marshmallow import ValidationError, fields

STROOPS_PER_UNIT = 10_000_000
PLACES = 7
# What a 64-bit stroop column holds: 922337203685.4775807.
MAX_STROOPS = 2**63 - 1
# ASCII digits only: Python's \d would also take "١٢" or "１２" and int() would read them.
_AMOUNT = re.compile(r"^([0-9]{1,12})(?:\.([0-9]{1,7}))?$", re.ASCII)


def parse(text: str) -> int:
    """'12.5' or '12.5000000' -> 125000000 stroops.

    Refuses negatives, >7 places, non-strings, digits other than ASCII 0-9 and what 64 bits cannot hold.
    """
    if not isinstance(text, str):
        raise ValueError('An amount is a decimal string, e.g. "12.5000000".')
    match = _AMOUNT.fullmatch(text.strip())
    if not match:
        raise ValueError('Not an amount: use a non-negative decimal with at most 7 places, e.g. "12.5000000".')
    whole, frac = match.group(1), (match.group(2) or "")
    stroops = int(whole) * STROOPS_PER_UNIT + int(frac.ljust(PLACES, "0"))
    if stroops > MAX_STROOPS:
        raise ValueError(f"Too large: an amount is at most {format(MAX_STROOPS)}.")
    return stroops


def format(stroops: int) -> str:  # noqa: A001 (the module's name says what it formats)
    sign = "-" if stroops < 0 else ""
    whole, frac = divmod(abs(int(stroops)), STROOPS_PER_UNIT)
    return f"{sign}{whole}.{frac:07d}"


class Amount(fields.Field):
    """A marshmallow field: "12.5000000" in the API, integer stroops in Python."""

    def __init__(self, *, minimum: int = 0, maximum: int | None = None, **kwargs):
        kwargs.setdefault("metadata", {})
        kwargs["metadata"] = {
            "type": "string",
            "pattern": r"^\d{1,12}(\.\d{1,7})?$",
            "example": "0.0100000",
            **kwargs["metadata"],
        }
        super().__init__(**kwargs)
        self.minimum, self.maximum = minimum, maximum

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else format(value)

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            stroops = parse(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc
        if stroops < self.minimum:
            raise ValidationError(f"Must be at least {format(self.minimum)}.")
        if self.maximum is not None and stroops > self.maximum:
            raise ValidationError(f"Must be at most {format(self.maximum)}.")
        return stroops
