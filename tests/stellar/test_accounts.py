from __future__ import annotations

import json
import os
import uuid

from stellar_sdk import Keypair, StrKey, TransactionEnvelope
from stellar_sdk.operation import InvokeHostFunction

from tests.conftest import bearer, register
from tests.stellar.conftest import PASSPHRASE, XLM, link_address


def test_keypair_fund_and_status(app, runner, horizon, custody):
    made = runner.invoke(args=["stellar", "keypair"])
    assert made.exit_code == 0
    public = made.output.split("public: ")[1].split()[0]
    assert StrKey.is_valid_ed25519_public_key(public)

    funded = runner.invoke(args=["stellar", "fund", public])
    assert funded.exit_code == 0, funded.output
    assert horizon.balance(public) == 10_000 * XLM  # friendbot on testnet
    again = runner.invoke(args=["stellar", "fund", public])
    assert again.exit_code != 0 and "friendbot refused" in again.output

    status = runner.invoke(args=["stellar", "status"])
    assert status.exit_code == 0, status.output
    report = json.loads(status.output)
    assert report["custody"] == custody.public_key
    assert report["payouts_in_flight"] == {"count": 0, "amount": "0.0000000"}
    assert custody.secret not in status.output
    assert runner.invoke(args=["stellar", "fund", "not-an-address"]).exit_code != 0


def test_off_testnet_funding_is_create_account_from_custody(stellar_app, horizon, custody):
    public = stellar_app(
        STELLAR_NETWORK="custom",
    )
    newcomer = Keypair.random().public_key
    result = public.test_cli_runner().invoke(args=["stellar", "fund", newcomer, "--amount", "3"])
    assert result.exit_code == 0, result.output
    assert horizon.balance(newcomer) == 3 * XLM


def test_balances_and_transactions_of_an_account(client, horizon, custody):
    user = register(client)
    headers = bearer(user["access_token"])
    sender = Keypair.random()
    horizon.create_account(sender.public_key, balance_stroops=50 * XLM)
    for n in range(3):
        horizon.pay_in(sender.public_key, custody.public_key, (n + 1) * XLM)
    balances = client.get(f"/api/v1/stellar/accounts/{sender.public_key}/balances", headers=headers)
    assert balances.status_code == 200
    assert balances.json["account"] == sender.public_key
    assert any(b["asset_type"] == "native" for b in balances.json["balances"])

    first = client.get(
        f"/api/v1/stellar/accounts/{sender.public_key}/transactions?limit=2&order=asc", headers=headers
    ).json
    assert len(first["records"]) == 2 and first["next_cursor"]
    rest = client.get(
        f"/api/v1/stellar/accounts/{sender.public_key}/transactions?limit=2&order=asc&cursor={first['next_cursor']}",
        headers=headers,
    ).json
    assert len(rest["records"]) == 1
    assert {r["hash"] for r in first["records"]}.isdisjoint({r["hash"] for r in rest["records"]})

    unknown = Keypair.random().public_key
    assert client.get(f"/api/v1/stellar/accounts/{unknown}/balances", headers=headers).status_code == 404
    assert client.get(f"/api/v1/stellar/accounts/{unknown}/transactions", headers=headers).status_code == 404
    for bad in ("nope", "G" + "A" * 55, custody.secret):
        reply = client.get(f"/api/v1/stellar/accounts/{bad}/balances", headers=headers)
        assert reply.status_code == 422 and custody.secret not in reply.get_data(as_text=True)
    assert client.get(f"/api/v1/stellar/accounts/{sender.public_key}/balances").status_code == 401
    horizon.down = True
    assert client.get(f"/api/v1/stellar/accounts/{sender.public_key}/balances", headers=headers).status_code == 503


def test_the_stream_contract_call_is_built_unsigned_for_the_viewers_wallet(stellar_app, horizon):
    contract = StrKey.encode_contract(os.urandom(32))
    configured = stellar_app(
        PAYMENT_STREAM_CONTRACT_ID=contract,
        RATELIMIT_ENABLED=False,
    )
    client = configured.test_client()
    viewer = register(client)
    body = {"content_id": str(uuid.uuid4()), "rate": "0.0010000"}
    unlinked = client.post("/api/v1/stellar/contract/stream", json=body, headers=bearer(viewer["access_token"]))
    assert unlinked.status_code == 409
    wallet = Keypair.random()
    horizon.create_account(wallet.public_key, balance_stroops=5 * XLM)
    link_address(client, viewer, wallet)
    reply = client.post("/api/v1/stellar/contract/stream", json=body, headers=bearer(viewer["access_token"]))
    assert reply.status_code == 200, reply.json
    assert reply.json["contract_id"] == contract and reply.json["prepared"] is False
    envelope = TransactionEnvelope.from_xdr(reply.json["transaction"], PASSPHRASE)
    assert envelope.signatures == []
    assert envelope.transaction.source.account_id == wallet.public_key
    assert envelope.transaction.sequence == horizon.sequence(wallet.public_key) + 1
    [op] = envelope.transaction.operations
    assert isinstance(op, InvokeHostFunction)
    for bad in ({**body, "rate": "-1"}, {**body, "rate": "0"}, {**body, "content_id": "x"}, {"rate": "1"}):
        assert (
            client.post("/api/v1/stellar/contract/stream", json=bad, headers=bearer(viewer["access_token"])).status_code
            == 422
        )


def test_the_stream_contract_needs_configuration(client):
    viewer = register(client)
    wallet = Keypair.random()
    link_address(client, viewer, wallet)
    reply = client.post(
        "/api/v1/stellar/contract/stream",
        json={"content_id": str(uuid.uuid4()), "rate": "1"},
        headers=bearer(viewer["access_token"]),
    )
    assert reply.status_code == 400 and "PAYMENT_STREAM_CONTRACT_ID" in reply.json["message"]


def test_a_bad_cursor_is_the_users_error_and_an_unreachable_horizon_says_so(client, horizon, custody):
    headers = bearer(register(client)["access_token"])
    sender = Keypair.random()
    horizon.create_account(sender.public_key, balance_stroops=5 * XLM)
    path = f"/api/v1/stellar/accounts/{sender.public_key}/transactions"
    for bad in ("abc", "-1", "1.5", "\u0661\u0662", "9" * 30, "now;drop"):
        reply = client.get(path, query_string={"cursor": bad}, headers=headers)
        assert reply.status_code == 422, reply.json
        assert "cursor" in reply.json["errors"]["query"]
    assert client.get(path, query_string={"cursor": "now"}, headers=headers).status_code == 200
    horizon.down = True
    for url in (path, f"/api/v1/stellar/accounts/{sender.public_key}/balances"):
        reply = client.get(url, headers=headers)
        assert reply.status_code == 503 and "Horizon is unreachable" in reply.json["message"], reply.json
