"""Periodic Stellar jobs (see streampay/cron.py): each is safe to run twice."""

from __future__ import annotations

from flask import current_app

from streampay.extensions import db
from streampay.stellar import deposits, payouts, reconcile


def scan_deposits() -> dict | None:
    if not current_app.config.get("STELLAR_MASTER_SECRET_KEY"):
        return None
    try:
        return deposits.scan()
    finally:
        db.session.remove()


def reconcile_custody() -> dict | None:
    """The ledger against the network; a difference is logged as an error (see reconcile.py)."""
    if not current_app.config.get("STELLAR_MASTER_SECRET_KEY"):
        return None
    try:
        return reconcile.reconcile().as_dict()
    finally:
        db.session.remove()


def run_payouts() -> dict | None:
    if not current_app.config.get("STELLAR_MASTER_SECRET_KEY"):
        return None
    try:
        return payouts.run()
    finally:
        db.session.remove()
