"""How a viewer pays in: the custody account with the viewer's memo, or its muxed (M...) address."""

from __future__ import annotations

from flask import current_app
from stellar_sdk import Asset, IdMemo, Keypair, MuxedAccount
from stellar_sdk.sep.stellar_uri import PayStellarUri


def custody_address() -> str | None:
    secret = current_app.config.get("STELLAR_MASTER_SECRET_KEY")
    return Keypair.from_secret(secret).public_key if secret else None


def deposit_details(wallet_id: int) -> dict:
    """The wallet's account id is its memo and its muxed id: unique, stable, and not a user id."""
    address = custody_address()
    if address is None:
        return {"address": None, "memo": None, "muxed_address": None, "payment_uri": None}
    return {
        "address": address,
        "memo": str(wallet_id),
        "muxed_address": MuxedAccount(address, wallet_id).account_muxed,
        "payment_uri": payment_uri(address, wallet_id),
    }


def payment_uri(address: str, wallet_id: int) -> str:
    """A SEP-7 `web+stellar:pay` request to the custody account with the wallet's memo, in the platform's asset."""
    cfg = current_app.config
    asset = Asset(cfg["STELLAR_ASSET_CODE"], cfg["STELLAR_ASSET_ISSUER"]) if cfg.get("STELLAR_ASSET_CODE") else None
    # SEP-7 names the network only when it is not the public one.
    passphrase = None if cfg["STELLAR_NETWORK"] == "public" else cfg["STELLAR_PASSPHRASE"]
    return PayStellarUri(
        destination=address, asset=asset, memo=IdMemo(wallet_id), network_passphrase=passphrase
    ).to_uri()
