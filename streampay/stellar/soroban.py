"""The non-custodial option: the unsigned Soroban call `initialize_stream(content_id, rate)` for a wallet to sign."""

from __future__ import annotations

from flask import current_app
from stellar_sdk import Account as StellarAccount
from stellar_sdk import SorobanServer, StrKey, TransactionBuilder, scval
from stellar_sdk.exceptions import SdkError

from streampay.errors import DomainError, Invalid
from streampay.stellar import horizon


def stream_invocation(viewer_account: str, content_id: str, rate: int) -> dict:
    contract = current_app.config.get("PAYMENT_STREAM_CONTRACT_ID")
    if not contract:
        raise DomainError("No payment-stream contract is configured (PAYMENT_STREAM_CONTRACT_ID).")
    if not StrKey.is_valid_contract(contract):
        raise DomainError("PAYMENT_STREAM_CONTRACT_ID is not a contract id (C...).")
    if rate <= 0:
        raise Invalid("The rate must be positive.", {"rate": ["Must be positive."]})
    record = horizon.load_account_record(viewer_account)
    builder = TransactionBuilder(
        StellarAccount(viewer_account, int(record["sequence"])), horizon.passphrase(), base_fee=horizon.base_fee()
    )
    builder.append_invoke_contract_function_op(
        contract, "initialize_stream", [scval.to_string(content_id), scval.to_int128(rate)]
    ).set_timeout(300)
    envelope = builder.build()
    prepared = False
    rpc = current_app.config.get("STELLAR_SOROBAN_RPC_URL")
    if rpc:
        try:
            envelope = SorobanServer(rpc).prepare_transaction(envelope)
            prepared = True
        except SdkError as exc:
            raise horizon.HorizonUnavailable(f"Soroban RPC could not prepare the call: {exc}") from exc
    return {
        "transaction": envelope.to_xdr(),
        "network_passphrase": horizon.passphrase(),
        "prepared": prepared,
        "contract_id": contract,
    }
