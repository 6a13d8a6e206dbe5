"""The Horizon stand-in lives in streampay.sandbox.horizon (it is also `flask stellar sandbox`)."""

from streampay.sandbox.horizon import FAULT_KINDS, Gate, HorizonStandin, decimal_to_stroops

__all__ = ["FAULT_KINDS", "Gate", "HorizonStandin", "decimal_to_stroops"]
