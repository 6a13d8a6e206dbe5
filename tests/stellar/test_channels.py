"""Channel accounts: batches in parallel, one per channel; custody stays the payer (and, bumped, pays the fees)."""

from __future__ import annotations

import pytest
from stellar_sdk import Keypair, Network, TransactionEnvelope
from stellar_sdk.fee_bump_transaction_envelope import FeeBumpTransactionEnvelope

from tests.stellar.conftest import XLM
from tests.stellar.test_payouts import check, run


@pytest.fixture
def channels(horizon) -> list[Keypair]:
    made = [Keypair.random() for _ in range(3)]
    for keypair in made:
        horizon.create_account(keypair.public_key, balance_stroops=100 * XLM)
    return made


@pytest.mark.parametrize("fee_bump", [False, True])
def test_batches_go_out_in_parallel_one_per_channel(stellar_app, horizon, custody, channels, fee_bump):
    from tests.stellar.conftest import give_earnings, link_address

    configured = stellar_app(
        RATELIMIT_ENABLED=False,
        STELLAR_CHANNEL_SECRETS=[c.secret for c in channels],
        STELLAR_FEE_BUMP=fee_bump,
    )
    client, runner = configured.test_client(), configured.test_cli_runner()
    from tests.conftest import register

    keys = []
    for _ in range(250):
        creator, keypair = register(client, role="creator"), Keypair.random()
        horizon.create_account(keypair.public_key, balance_stroops=XLM)
        link_address(client, creator, keypair)
        give_earnings(configured, creator, 2 * XLM)
        keys.append(keypair)
    custody_before = horizon.balance(custody.public_key)

    assert run(runner)["paid"] == 250
    assert len(horizon.applied) == 3
    assert all(horizon.balance(k.public_key) == 3 * XLM for k in keys)
    sources = set()
    for tx_hash in horizon.applied:
        xdr = horizon.transaction(tx_hash)["envelope_xdr"]
        if fee_bump:
            envelope = FeeBumpTransactionEnvelope.from_xdr(xdr, Network.TESTNET_NETWORK_PASSPHRASE)
            assert envelope.transaction.fee_source.account_id == custody.public_key
            inner = envelope.transaction.inner_transaction_envelope.transaction
        else:
            inner = TransactionEnvelope.from_xdr(xdr, Network.TESTNET_NETWORK_PASSPHRASE).transaction
        sources.add(inner.source.account_id)
        assert {op.source.account_id for op in inner.operations} == {custody.public_key}
    assert sources == {c.public_key for c in channels}
    paid_out = 250 * 2 * XLM
    if fee_bump:  # the channels pay nothing; custody pays the payments and every fee
        assert all(horizon.balance(c.public_key) == 100 * XLM for c in channels)
        assert horizon.balance(custody.public_key) < custody_before - paid_out
    else:
        assert horizon.balance(custody.public_key) == custody_before - paid_out
        assert all(horizon.balance(c.public_key) < 100 * XLM for c in channels)
    check(runner)
