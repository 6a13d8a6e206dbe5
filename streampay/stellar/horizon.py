"""The network boundary: Horizon through stellar-sdk, with the configured network, always.

TransactionBuilder's default passphrase is testnet's, so every builder here is given the
configured one. Secrets never leave this module's callers in logs or replies.
"""

from __future__ import annotations

from datetime import datetime

from flask import current_app
from stellar_sdk import Asset, Keypair, Server, StrKey
from stellar_sdk.client.requests_client import RequestsClient
from stellar_sdk.exceptions import BadRequestError, BaseHorizonError, BaseRequestError, NotFoundError

from streampay.errors import DomainError, Invalid, NotFound


class HorizonUnavailable(DomainError):
    status, code = 503, "horizon_unavailable"


class HorizonFailed(DomainError):
    status, code = 502, "horizon_error"


def refusal(exc: BaseRequestError) -> DomainError:
    """What a user is told when a read from Horizon fails: their query, or Horizon's own trouble."""
    if isinstance(exc, NotFoundError):
        return NotFound("Not found on the network.")
    if isinstance(exc, BadRequestError):
        extras = exc.extras or {}
        field = extras.get("invalid_field") or "query"
        reason = extras.get("reason") or exc.detail or "invalid"
        return Invalid(f"Horizon refused the query: {reason}.", {field: [str(reason)]})
    if isinstance(exc, BaseHorizonError):
        return HorizonFailed(f"Horizon answered with an error ({exc.status}); try again shortly.")
    return HorizonUnavailable("Horizon is unreachable (no answer from the network's API); try again shortly.")


def server() -> Server:
    """A Horizon client (use it in a `with` block: it holds a connection pool).

    No automatic retries: a submission's outcome must be looked up by hash, not resent blindly.
    """
    timeout = current_app.config["STELLAR_TIMEOUT"]
    client = RequestsClient(num_retries=0, request_timeout=timeout, post_timeout=timeout)
    return Server(current_app.config["STELLAR_HORIZON_URL"], client=client)


def call(request):
    """Run `request(server)` on a fresh client and close it."""
    with server() as horizon_server:
        return request(horizon_server)


def passphrase() -> str:
    return current_app.config["STELLAR_PASSPHRASE"]


def base_fee() -> int:
    return current_app.config["STELLAR_BASE_FEE"]


def custody() -> Keypair:
    secret = current_app.config.get("STELLAR_MASTER_SECRET_KEY")
    if not secret:
        raise DomainError("No custody account is configured (STELLAR_MASTER_SECRET_KEY).")
    return Keypair.from_secret(secret)


def asset() -> Asset:
    code, issuer = current_app.config.get("STELLAR_ASSET_CODE"), current_app.config.get("STELLAR_ASSET_ISSUER")
    return Asset(code, issuer) if code and issuer else Asset.native()


def matches_asset(record: dict) -> bool:
    wanted = asset()
    if wanted.is_native():
        return record.get("asset_type") == "native"
    return record.get("asset_code") == wanted.code and record.get("asset_issuer") == wanted.issuer


def check_address(address: str) -> str:
    if not isinstance(address, str) or not StrKey.is_valid_ed25519_public_key(address):
        raise Invalid("Not a Stellar account address (G..., 56 characters).", {"address": ["Invalid."]})
    return address


def load_account_record(address: str) -> dict:
    """Horizon's account record, with clear errors for an unknown address or an unreachable Horizon."""
    check_address(address)
    try:
        return call(lambda s: s.accounts().account_id(address).call())
    except NotFoundError as exc:
        raise NotFound("No such account on the network (it may not be funded yet).") from exc
    except BaseRequestError as exc:
        raise refusal(exc) from exc


def latest_ledger_time() -> int:
    """Unix time of the newest closed ledger: time bounds are judged by the network's clock."""
    record = call(lambda s: s.ledgers().order(desc=True).limit(1).call())["_embedded"]["records"][0]
    return int(datetime.fromisoformat(record["closed_at"].replace("Z", "+00:00")).timestamp())


def result_codes(error: BadRequestError) -> tuple[str | None, list[str]]:
    codes = (error.extras or {}).get("result_codes") or {}
    return codes.get("transaction"), list(codes.get("operations") or [])
