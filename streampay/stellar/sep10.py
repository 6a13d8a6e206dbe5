"""SEP-10: prove you hold an account's key by signing a challenge; link it for payouts, or sign in with it."""

from __future__ import annotations

from flask import current_app
from sqlalchemy import select
from stellar_sdk import Keypair
from stellar_sdk.exceptions import SdkError
from stellar_sdk.sep.exceptions import InvalidSep10ChallengeError
from stellar_sdk.sep.stellar_web_authentication import (
    build_challenge_transaction,
    read_challenge_transaction,
    verify_challenge_transaction_signed_by_client_master_key,
)
from stellar_sdk.transaction_envelope import TransactionEnvelope

from streampay.auth import tokens
from streampay.dbtypes import utcnow
from streampay.errors import Conflict, Invalid, Unauthorized
from streampay.extensions import db, redis_client
from streampay.stellar import horizon
from streampay.users.models import User


def _signing_key() -> Keypair:
    secret = current_app.config.get("STELLAR_SEP10_SIGNING_SECRET")
    return Keypair.from_secret(secret) if secret else horizon.custody()


def _domains() -> tuple[str, str]:
    return current_app.config["STELLAR_HOME_DOMAIN"], current_app.config["STELLAR_WEB_AUTH_DOMAIN"]


def challenge(account: str) -> dict:
    horizon.check_address(account)
    home, web_auth = _domains()
    xdr = build_challenge_transaction(
        server_secret=_signing_key().secret,
        client_account_id=account,
        home_domain=home,
        web_auth_domain=web_auth,
        network_passphrase=horizon.passphrase(),
        timeout=current_app.config["STELLAR_SEP10_TIMEOUT"],
    )
    return {"transaction": xdr, "network_passphrase": horizon.passphrase()}


def verify(transaction: str) -> str:
    """The account a signed challenge proves, once: a challenge cannot be used twice."""
    home, web_auth = _domains()
    server_key = _signing_key().public_key
    try:
        read = read_challenge_transaction(transaction, server_key, home, web_auth, horizon.passphrase())
        verify_challenge_transaction_signed_by_client_master_key(
            transaction, server_key, home, web_auth, horizon.passphrase()
        )
    except (InvalidSep10ChallengeError, SdkError) as exc:
        raise Unauthorized(f"The challenge does not verify: {exc}") from exc
    except Exception as exc:  # undecodable XDR raises EOFError, binascii.Error, ValueError...
        raise Unauthorized("The challenge is not a transaction envelope (base64 XDR).") from exc
    envelope = TransactionEnvelope.from_xdr(transaction, horizon.passphrase())
    bounds = envelope.transaction.preconditions.time_bounds
    ttl = max(1, bounds.max_time - int(utcnow().timestamp()) + 1) if bounds else 900
    if not redis_client().set(f"sep10:used:{envelope.hash_hex()}", b"1", nx=True, ex=ttl):
        raise Unauthorized("This challenge was already used; ask for a new one.")
    return read.client_account_id


def link(user: User, account: str) -> User:
    if account.startswith("M"):
        raise Invalid("Link a G... account, not a muxed address.", {"transaction": ["Muxed client account."]})
    holder = db.session.scalar(select(User).where(User.stellar_address == account, User.id != user.id))
    if holder is not None:
        raise Conflict("That Stellar account is linked to another user.")
    user.stellar_address, user.stellar_verified_at = account, utcnow()
    db.session.commit()
    return user


def sign_in(account: str) -> dict:
    user = db.session.scalar(select(User).where(User.stellar_address == account))
    if user is None or not user.is_active:
        raise Unauthorized("No active user has linked this Stellar account; sign in and link it first.")
    return {**tokens.issue_pair(user), "user": user}
