from __future__ import annotations

import time

from stellar_sdk import Keypair, Network

from tests.conftest import bearer, register
from tests.stellar.conftest import link_address, signed


def challenge_for(client, keypair: Keypair) -> str:
    reply = client.post("/api/v1/stellar/auth/challenge", json={"account": keypair.public_key})
    assert reply.status_code == 200
    assert reply.json["network_passphrase"] == Network.TESTNET_NETWORK_PASSPHRASE
    return reply.json["transaction"]


def verify(client, transaction: str, token: str | None = None):
    return client.post(
        "/api/v1/stellar/auth/verify", json={"transaction": transaction}, headers=bearer(token) if token else {}
    )


def test_link_a_payout_address_then_sign_in_with_it(client):
    user = register(client, role="creator")
    wallet = Keypair.random()
    linked = link_address(client, user, wallet)
    assert linked["linked"] is True and linked["account"] == wallet.public_key
    profile = client.get("/api/v1/auth/profile", headers=bearer(user["access_token"])).json
    assert profile["stellar_address"] == wallet.public_key and profile["stellar_verified_at"]

    signed_in = verify(client, signed(challenge_for(client, wallet), wallet))
    assert signed_in.status_code == 200 and signed_in.json["linked"] is False
    assert signed_in.json["user"]["id"] == user["user"]["id"]
    me = client.get("/api/v1/auth/profile", headers=bearer(signed_in.json["access_token"]))
    assert me.json["id"] == user["user"]["id"]


def test_a_challenge_works_once(client):
    user = register(client)
    wallet = Keypair.random()
    transaction = signed(challenge_for(client, wallet), wallet)
    assert verify(client, transaction, user["access_token"]).status_code == 200
    again = verify(client, transaction, user["access_token"])
    assert again.status_code == 401 and "already used" in again.json["message"]


def test_the_wrong_signer_is_refused(client):
    user = register(client)
    wallet, impostor = Keypair.random(), Keypair.random()
    reply = verify(client, signed(challenge_for(client, wallet), impostor), user["access_token"])
    assert reply.status_code == 401 and reply.json["code"] == 401
    unsigned = verify(client, challenge_for(client, wallet), user["access_token"])
    assert unsigned.status_code == 401
    assert client.get("/api/v1/auth/profile", headers=bearer(user["access_token"])).json["stellar_address"] is None


def test_a_signature_for_another_network_is_refused(client):
    user = register(client)
    wallet = Keypair.random()
    challenge = challenge_for(client, wallet)
    wrong = signed(challenge, wallet, passphrase=Network.PUBLIC_NETWORK_PASSPHRASE)
    assert verify(client, wrong, user["access_token"]).status_code == 401


def test_an_expired_challenge_is_refused(stellar_app):
    short = stellar_app(
        STELLAR_SEP10_TIMEOUT=1,
        RATELIMIT_ENABLED=False,
    )
    client = short.test_client()
    user = register(client)
    wallet = Keypair.random()
    transaction = signed(challenge_for(client, wallet), wallet)
    time.sleep(2.2)
    reply = verify(client, transaction, user["access_token"])
    assert reply.status_code == 401


def test_bad_requests_and_conflicts(client):
    first, second = register(client), register(client)
    wallet = Keypair.random()
    link_address(client, first, wallet)
    taken = verify(client, signed(challenge_for(client, wallet), wallet), second["access_token"])
    assert taken.status_code == 409
    stranger = Keypair.random()
    unknown = verify(client, signed(challenge_for(client, stranger), stranger))
    assert unknown.status_code == 401 and "link it first" in unknown.json["message"]
    for account in ["", "GABC", "S" + "A" * 55, 5, None]:
        assert client.post("/api/v1/stellar/auth/challenge", json={"account": account}).status_code == 422
    for transaction in ["", "not-xdr", "AAAA"]:
        assert verify(client, transaction).status_code in (401, 422)
