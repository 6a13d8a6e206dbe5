"""Periodic auth jobs (see streampay/cron.py)."""

from __future__ import annotations

from streampay.auth import tokens
from streampay.extensions import db


def prune_tokens() -> int:
    """Delete spent refresh tokens and sign-ins that no token can use any more."""
    try:
        return tokens.prune()
    finally:
        db.session.remove()
