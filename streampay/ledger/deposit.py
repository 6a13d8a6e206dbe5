"""How a viewer pays in: the custody account with the viewer's memo, or its muxed (M...) address."""

from __future__ import annotations

from flask import current_app
from stellar_sdk import Keypair, MuxedAccount


def custody_address() -> str | None:
    secret = current_app.config.get("STELLAR_MASTER_SECRET_KEY")
    return Keypair.from_secret(secret).public_key if secret else None


def deposit_details(wallet_id: int) -> dict:
    """The wallet's account id is its memo and its muxed id: unique, stable, and not a user id."""
    address = custody_address()
    if address is None:
        return {"address": None, "memo": None, "muxed_address": None}
    return {"address": address, "memo": str(wallet_id), "muxed_address": MuxedAccount(address, wallet_id).account_muxed}
