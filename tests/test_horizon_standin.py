"""The Horizon stand-in, proved with stellar_sdk as its client (Server over RequestsClient)."""

from __future__ import annotations

import threading
import time

import pytest
import requests
from stellar_sdk import (
    Account,
    Asset,
    IdMemo,
    Keypair,
    MuxedAccount,
    Network,
    Payment,
    RequestsClient,
    Server,
    TextMemo,
    Transaction,
    TransactionBuilder,
    TransactionEnvelope,
)
from stellar_sdk import xdr as stellar_xdr
from stellar_sdk.exceptions import BadRequestError, BadResponseError, ConnectionError, NotFoundError

from streampay.sandbox.horizon import HorizonStandin

PASSPHRASE = Network.TESTNET_NETWORK_PASSPHRASE
XLM = 10_000_000


@pytest.fixture
def horizon():
    with HorizonStandin(network_passphrase=PASSPHRASE) as standin:
        yield standin
        assert standin.errors == []


@pytest.fixture
def server(horizon):
    """No client-side retries and short timeouts, so each fault is seen as it is."""
    client = RequestsClient(num_retries=0, request_timeout=5, post_timeout=5)
    with Server(horizon.url, client=client) as srv:
        yield srv


def funded(horizon: HorizonStandin, xlm: int = 100, sequence: int | None = None) -> Keypair:
    kp = Keypair.random()
    horizon.create_account(kp.public_key, balance_stroops=xlm * XLM, sequence=sequence)
    return kp


def payment(
    horizon: HorizonStandin,
    source: Keypair,
    destination: str,
    amount: str,
    *,
    passphrase: str = PASSPHRASE,
    sequence: int | None = None,
    memo=None,
    asset: Asset | None = None,
    extra: list[tuple[str, str]] = (),
    timeout: int = 30,
) -> TransactionEnvelope:
    seq = horizon.sequence(source.public_key) if sequence is None else sequence
    builder = TransactionBuilder(Account(source.public_key, seq), network_passphrase=passphrase, base_fee=100)
    builder.append_payment_op(destination, asset or Asset.native(), amount)
    for dest, amt in extra:
        builder.append_payment_op(dest, Asset.native(), amt)
    if memo is not None:
        builder.add_memo(memo)
    envelope = builder.set_timeout(timeout).build()
    envelope.sign(source)
    return envelope


def get(horizon: HorizonStandin, path: str, **params) -> tuple[int, dict]:
    resp = requests.get(horizon.url + path, params=params, timeout=5)
    try:
        return resp.status_code, resp.json()
    finally:
        resp.close()


def result_codes(err: BadRequestError | BadResponseError) -> dict:
    return err.extras["result_codes"]


# -- accounts ---------------------------------------------------------------------------------


def test_load_account_and_the_account_document(horizon, server):
    kp = funded(horizon, xlm=12, sequence=4242)
    horizon.add_trustline(kp.public_key, "USDC", Keypair.random().public_key, balance_stroops=123_456_789)

    account = server.load_account(kp.public_key)
    assert account.sequence == 4242
    assert account.account.account_id == kp.public_key

    doc = server.accounts().account_id(kp.public_key).call()
    assert doc["id"] == doc["account_id"] == kp.public_key
    assert doc["sequence"] == "4242"
    assert doc["signers"] == [{"weight": 1, "key": kp.public_key, "type": "ed25519_public_key"}]
    assert doc["thresholds"] == {"low_threshold": 0, "med_threshold": 0, "high_threshold": 0}
    assert doc["subentry_count"] == 1
    native = [b for b in doc["balances"] if b["asset_type"] == "native"]
    credit = [b for b in doc["balances"] if b["asset_type"] == "credit_alphanum4"]
    assert native[0]["balance"] == "12.0000000"
    assert credit[0]["asset_code"] == "USDC" and credit[0]["balance"] == "12.3456789"
    assert credit[0]["limit"] == "922337203685.4775807"
    assert horizon.balance(kp.public_key) == 12 * XLM
    assert horizon.sequence(kp.public_key) == 4242


def test_unknown_account_is_404_problem_and_muxed_loads_its_base(horizon, server):
    with pytest.raises(NotFoundError) as exc:
        server.load_account(Keypair.random().public_key)
    assert exc.value.status == 404
    assert exc.value.type == "https://stellar.org/horizon-errors/not_found"
    assert exc.value.title == "Resource Missing"

    kp = funded(horizon, sequence=7)
    muxed = MuxedAccount(kp.public_key, 99).account_muxed
    account = server.load_account(muxed)  # stellar_sdk asks Horizon for the G… account
    assert account.sequence == 7
    assert account.account.account_muxed_id == 99
    status, body = get(horizon, f"/accounts/{muxed}")
    assert status == 400 and body["extras"]["invalid_field"] == "account_id"


# -- submitting -------------------------------------------------------------------------------


def test_payment_is_applied_with_its_fee_sequence_and_record(horizon, server):
    alice, bob = funded(horizon, 100, sequence=10), funded(horizon, 5)
    envelope = payment(horizon, alice, bob.public_key, "12.5", memo=TextMemo("invoice 7"))

    resp = server.submit_transaction(envelope, skip_memo_required_check=True)

    assert resp["hash"] == envelope.hash_hex()
    assert resp["successful"] is True
    assert resp["envelope_xdr"] == envelope.to_xdr()
    assert resp["fee_charged"] == "100"
    assert resp["memo_type"] == "text" and resp["memo"] == "invoice 7"
    result = stellar_xdr.TransactionResult.from_xdr(resp["result_xdr"])
    assert result.result.code == stellar_xdr.TransactionResultCode.txSUCCESS
    assert horizon.balance(alice.public_key) == 100 * XLM - 125_000_000 - 100
    assert horizon.balance(bob.public_key) == 5 * XLM + 125_000_000
    assert horizon.sequence(alice.public_key) == 11
    assert server.load_account(alice.public_key).sequence == 11
    assert horizon.submitted == horizon.applied == [envelope.hash_hex()]

    record = server.transactions().transaction(envelope.hash_hex()).call()
    assert record["ledger"] == resp["ledger"] == horizon.latest_ledger
    assert record["source_account"] == alice.public_key
    assert record["source_account_sequence"] == "11"
    assert record["paging_token"] and record["created_at"].endswith("Z")
    assert "valid_before" in record


def test_memo_required_check_runs_against_the_standin(horizon, server):
    alice, bob = funded(horizon), funded(horizon)
    # Without skip_memo_required_check the SDK first GETs the destination and reads its "data".
    server.submit_transaction(payment(horizon, alice, bob.public_key, "1"))
    assert horizon.balance(bob.public_key) == 101 * XLM


def test_resubmitting_an_included_envelope_returns_the_same_answer(horizon, server):
    alice, bob = funded(horizon), funded(horizon)
    envelope = payment(horizon, alice, bob.public_key, "1")
    first = server.submit_transaction(envelope, skip_memo_required_check=True)
    again = server.submit_transaction(envelope, skip_memo_required_check=True)
    assert again["hash"] == first["hash"] and again["ledger"] == first["ledger"]
    assert horizon.balance(bob.public_key) == 101 * XLM
    assert horizon.applied == [envelope.hash_hex()]
    assert horizon.submitted == [envelope.hash_hex()] * 2


def test_wrong_network_passphrase_fails_signature_check(horizon, server):
    alice, bob = funded(horizon, sequence=3), funded(horizon)
    envelope = payment(horizon, alice, bob.public_key, "1", passphrase=Network.PUBLIC_NETWORK_PASSPHRASE)

    with pytest.raises(BadRequestError) as exc:
        server.submit_transaction(envelope, skip_memo_required_check=True)

    assert exc.value.status == 400
    assert exc.value.type == "https://stellar.org/horizon-errors/transaction_failed"
    assert result_codes(exc.value) == {"transaction": "tx_bad_auth"}
    result = stellar_xdr.TransactionResult.from_xdr(exc.value.result_xdr)
    assert result.result.code == stellar_xdr.TransactionResultCode.txBAD_AUTH
    assert horizon.sequence(alice.public_key) == 3
    assert horizon.balance(alice.public_key) == 100 * XLM
    assert horizon.applied == []


def test_missing_and_extra_signatures(horizon, server):
    alice, bob, mallory = funded(horizon), funded(horizon), Keypair.random()
    builder = TransactionBuilder(server.load_account(alice.public_key), PASSPHRASE, base_fee=100)
    envelope = builder.append_payment_op(bob.public_key, Asset.native(), "1").set_timeout(30).build()
    envelope.sign(mallory)
    with pytest.raises(BadRequestError) as exc:
        server.submit_transaction(envelope, skip_memo_required_check=True)
    assert result_codes(exc.value)["transaction"] == "tx_bad_auth"

    envelope.sign(alice)  # now alice's signature plus an unused one
    with pytest.raises(BadRequestError) as exc:
        server.submit_transaction(envelope, skip_memo_required_check=True)
    assert result_codes(exc.value)["transaction"] == "tx_bad_auth_extra"

    # An operation with another source needs that account's signature too.
    builder = TransactionBuilder(server.load_account(alice.public_key), PASSPHRASE, base_fee=100)
    builder.append_payment_op(alice.public_key, Asset.native(), "1", source=bob.public_key)
    envelope = builder.set_timeout(30).build()
    envelope.sign(alice)
    with pytest.raises(BadRequestError) as exc:
        server.submit_transaction(envelope, skip_memo_required_check=True)
    assert result_codes(exc.value) == {"transaction": "tx_failed", "operations": ["op_bad_auth"]}
    envelope.sign(bob)
    server.submit_transaction(envelope, skip_memo_required_check=True)
    assert horizon.balance(bob.public_key) == 99 * XLM
    assert horizon.balance(alice.public_key) == 101 * XLM - 100


def test_reused_sequence_is_tx_bad_seq(horizon, server):
    alice, bob = funded(horizon, sequence=50), funded(horizon)
    server.submit_transaction(payment(horizon, alice, bob.public_key, "1"), skip_memo_required_check=True)

    stale = payment(horizon, alice, bob.public_key, "2", sequence=50)  # builds sequence 51 again
    with pytest.raises(BadRequestError) as exc:
        server.submit_transaction(stale, skip_memo_required_check=True)
    assert result_codes(exc.value) == {"transaction": "tx_bad_seq"}
    assert horizon.sequence(alice.public_key) == 51
    assert horizon.balance(bob.public_key) == 101 * XLM

    future = payment(horizon, alice, bob.public_key, "2", sequence=60)
    with pytest.raises(BadRequestError) as exc:
        server.submit_transaction(future, skip_memo_required_check=True)
    assert result_codes(exc.value) == {"transaction": "tx_bad_seq"}


def test_time_bounds_and_the_ledger_clock(horizon, server):
    alice, bob = funded(horizon), funded(horizon)
    now = int(time.time())

    account = server.load_account(alice.public_key)
    late = (
        TransactionBuilder(account, PASSPHRASE, base_fee=100)
        .append_payment_op(bob.public_key, Asset.native(), "1")
        .add_time_bounds(0, now - 5)
        .build()
    )
    late.sign(alice)
    with pytest.raises(BadRequestError) as exc:
        server.submit_transaction(late, skip_memo_required_check=True)
    assert result_codes(exc.value) == {"transaction": "tx_too_late"}

    account = server.load_account(alice.public_key)
    early = (
        TransactionBuilder(account, PASSPHRASE, base_fee=100)
        .append_payment_op(bob.public_key, Asset.native(), "1")
        .add_time_bounds(now + 600, 0)
        .build()
    )
    early.sign(alice)
    with pytest.raises(BadRequestError) as exc:
        server.submit_transaction(early, skip_memo_required_check=True)
    assert result_codes(exc.value) == {"transaction": "tx_too_early"}

    # A set_timeout(30) envelope goes stale once the stand-in's clock passes its max_time,
    # and the latest ledger's closed_at shows that to a client deciding whether to rebuild.
    pending = payment(horizon, alice, bob.public_key, "1", timeout=30)
    max_time = pending.transaction.preconditions.time_bounds.max_time
    horizon.advance_time(31)
    latest = server.ledgers().order(desc=True).limit(1).call()["_embedded"]["records"][0]
    closed_at = time.mktime(time.strptime(latest["closed_at"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert closed_at > max_time
    with pytest.raises(BadRequestError) as exc:
        server.submit_transaction(pending, skip_memo_required_check=True)
    assert result_codes(exc.value) == {"transaction": "tx_too_late"}
    assert horizon.applied == []


def test_fee_below_100_stroops_per_operation(horizon, server):
    alice, bob = funded(horizon, sequence=1), funded(horizon)
    ops = [Payment(bob.public_key, Asset.native(), "1"), Payment(bob.public_key, Asset.native(), "1")]
    envelope = TransactionEnvelope(Transaction(alice.public_key, 2, 199, ops), PASSPHRASE)
    envelope.sign(alice)
    with pytest.raises(BadRequestError) as exc:
        server.submit_transaction(envelope, skip_memo_required_check=True)
    assert result_codes(exc.value) == {"transaction": "tx_insufficient_fee"}
    assert horizon.sequence(alice.public_key) == 1


def test_malformed_envelope(horizon):
    resp = requests.post(horizon.url + "/transactions", data={"tx": "not-xdr"}, timeout=5)
    with resp:
        assert resp.status_code == 400
        assert resp.json()["type"].endswith("/transaction_malformed")


# -- operations: all or nothing ---------------------------------------------------------------


def test_no_destination_applies_nothing_and_keeps_the_sequence(horizon, server):
    alice, bob, ghost = funded(horizon, sequence=20), funded(horizon), Keypair.random()
    envelope = payment(horizon, alice, bob.public_key, "3", extra=[(ghost.public_key, "4")])

    with pytest.raises(BadRequestError) as exc:
        server.submit_transaction(envelope, skip_memo_required_check=True)

    assert result_codes(exc.value) == {"transaction": "tx_failed", "operations": ["op_success", "op_no_destination"]}
    assert exc.value.extras["envelope_xdr"] == envelope.to_xdr()
    result = stellar_xdr.TransactionResult.from_xdr(exc.value.result_xdr)
    assert result.result.results[1].tr.payment_result.code == stellar_xdr.PaymentResultCode.PAYMENT_NO_DESTINATION
    assert horizon.balance(alice.public_key) == 100 * XLM
    assert horizon.balance(bob.public_key) == 100 * XLM
    assert horizon.sequence(alice.public_key) == 20
    with pytest.raises(NotFoundError):
        server.transactions().transaction(envelope.hash_hex()).call()

    # The sequence number is still free: a corrected batch with it goes through.
    server.submit_transaction(payment(horizon, alice, bob.public_key, "3"), skip_memo_required_check=True)
    assert horizon.sequence(alice.public_key) == 21


def test_real_network_mode_includes_apply_failures():
    with HorizonStandin(PASSPHRASE, failed_ops_consume_sequence=True) as horizon:
        with Server(horizon.url, client=RequestsClient(num_retries=0)) as server:
            alice, bob, ghost = funded(horizon, sequence=20), funded(horizon), Keypair.random()
            envelope = payment(horizon, alice, bob.public_key, "3", extra=[(ghost.public_key, "4")])
            with pytest.raises(BadRequestError) as exc:
                server.submit_transaction(envelope, skip_memo_required_check=True)
            codes = {"transaction": "tx_failed", "operations": ["op_success", "op_no_destination"]}
            assert result_codes(exc.value) == codes
            # Included as failed: fee charged, sequence consumed, nothing else moved.
            assert horizon.sequence(alice.public_key) == 21
            assert horizon.balance(alice.public_key) == 100 * XLM - 200
            assert horizon.balance(bob.public_key) == 100 * XLM
            record = server.transactions().transaction(envelope.hash_hex()).call()
            assert record["successful"] is False
            assert horizon.applied == [envelope.hash_hex()]
            # Resubmitting gets the same failure back; the payments feed hides it unless asked.
            with pytest.raises(BadRequestError) as again:
                server.submit_transaction(envelope, skip_memo_required_check=True)
            assert result_codes(again.value) == codes
            assert server.payments().for_account(bob.public_key).call()["_embedded"]["records"] == []
            failed = server.payments().for_account(bob.public_key).include_failed(True).call()
            assert [r["transaction_successful"] for r in failed["_embedded"]["records"]] == [False]
        assert horizon.errors == []


def test_underfunded_payment(horizon, server):
    alice, bob = funded(horizon, xlm=1), funded(horizon)
    with pytest.raises(BadRequestError) as exc:
        server.submit_transaction(payment(horizon, alice, bob.public_key, "5"), skip_memo_required_check=True)
    assert result_codes(exc.value)["operations"] == ["op_underfunded"]
    assert horizon.balance(alice.public_key) == 1 * XLM


def test_create_account_and_already_exists(horizon, server):
    alice, carol = funded(horizon), Keypair.random()
    builder = TransactionBuilder(server.load_account(alice.public_key), PASSPHRASE, base_fee=100)
    envelope = builder.append_create_account_op(carol.public_key, "20").set_timeout(30).build()
    envelope.sign(alice)
    resp = server.submit_transaction(envelope)
    assert horizon.balance(carol.public_key) == 20 * XLM
    assert horizon.sequence(carol.public_key) == resp["ledger"] << 32
    ops = server.payments().for_account(carol.public_key).call()["_embedded"]["records"]
    assert ops[0]["type"] == "create_account" and ops[0]["type_i"] == 0
    assert ops[0]["account"] == carol.public_key and ops[0]["funder"] == alice.public_key
    assert ops[0]["starting_balance"] == "20.0000000"

    builder = TransactionBuilder(server.load_account(alice.public_key), PASSPHRASE, base_fee=100)
    envelope = builder.append_create_account_op(carol.public_key, "20").set_timeout(30).build()
    envelope.sign(alice)
    with pytest.raises(BadRequestError) as exc:
        server.submit_transaction(envelope)
    assert result_codes(exc.value)["operations"] == ["op_already_exists"]


def test_credit_asset_needs_trustlines(horizon, server):
    issuer, alice, bob = funded(horizon), funded(horizon), funded(horizon)
    usdc = Asset("USDC", issuer.public_key)

    with pytest.raises(BadRequestError) as exc:
        server.submit_transaction(payment(horizon, issuer, alice.public_key, "10", asset=usdc))
    assert result_codes(exc.value)["operations"] == ["op_no_trust"]

    for holder in (alice, bob):
        builder = TransactionBuilder(server.load_account(holder.public_key), PASSPHRASE, base_fee=100)
        envelope = builder.append_change_trust_op(usdc).set_timeout(30).build()
        envelope.sign(holder)
        server.submit_transaction(envelope)
    server.submit_transaction(payment(horizon, issuer, alice.public_key, "10", asset=usdc))  # issuer mints
    server.submit_transaction(payment(horizon, alice, bob.public_key, "4", asset=usdc))
    assert horizon.balance(alice.public_key, usdc) == 6 * XLM
    assert horizon.balance(bob.public_key, ("USDC", issuer.public_key)) == 4 * XLM
    assert horizon.balance(alice.public_key) == 100 * XLM - 200  # two fees in XLM

    with pytest.raises(BadRequestError) as exc:
        server.submit_transaction(payment(horizon, alice, bob.public_key, "7", asset=usdc))
    assert result_codes(exc.value)["operations"] == ["op_underfunded"]
    doc = server.accounts().account_id(bob.public_key).call()
    assert {"asset_code": "USDC", "balance": "4.0000000"}.items() <= doc["balances"][0].items()


def test_muxed_destination_credits_the_base_account(horizon, server):
    alice, custody = funded(horizon), funded(horizon, xlm=0)
    muxed = MuxedAccount(custody.public_key, 1234567890123)
    envelope = payment(horizon, alice, muxed.account_muxed, "2.5")
    server.submit_transaction(envelope)  # memo check skips M… destinations
    horizon.pay_in(Keypair.random().public_key, MuxedAccount(custody.public_key, 7).account_muxed, 10_000_000)

    assert horizon.balance(custody.public_key) == 25_000_000 + 10_000_000
    records = server.payments().for_account(custody.public_key).call()["_embedded"]["records"]
    assert [r["to"] for r in records] == [custody.public_key] * 2
    assert [r["to_muxed"] for r in records] == [muxed.account_muxed, MuxedAccount(custody.public_key, 7).account_muxed]
    assert [r["to_muxed_id"] for r in records] == ["1234567890123", "7"]
    assert records[0]["from"] == alice.public_key and "from_muxed" not in records[0]
    assert records[0]["amount"] == "2.5000000" and records[0]["asset_type"] == "native"


def test_fee_bump_charges_the_fee_source(horizon, server):
    alice, sponsor, bob = funded(horizon, sequence=8), funded(horizon), funded(horizon)
    inner = payment(horizon, alice, bob.public_key, "1")
    outer = TransactionBuilder.build_fee_bump_transaction(sponsor.public_key, 100, inner, PASSPHRASE)
    outer.sign(sponsor)
    resp = server.submit_transaction(outer, skip_memo_required_check=True)
    assert resp["hash"] == outer.hash_hex()
    assert resp["fee_account"] == sponsor.public_key and resp["fee_charged"] == "200"
    assert resp["inner_transaction"]["hash"] == inner.hash_hex()
    assert horizon.balance(sponsor.public_key) == 100 * XLM - 200
    assert horizon.balance(alice.public_key) == 99 * XLM
    assert horizon.sequence(alice.public_key) == 9
    assert server.transactions().transaction(inner.hash_hex()).call()["hash"] == outer.hash_hex()

    stale = TransactionBuilder.build_fee_bump_transaction(
        sponsor.public_key, 101, payment(horizon, alice, bob.public_key, "1", sequence=8), PASSPHRASE
    )
    stale.sign(sponsor)
    with pytest.raises(BadRequestError) as exc:
        server.submit_transaction(stale, skip_memo_required_check=True)
    assert result_codes(exc.value) == {"transaction": "tx_fee_bump_inner_failed", "inner_transaction": "tx_bad_seq"}


# -- feeds ------------------------------------------------------------------------------------


def test_payments_feed_pages_with_cursors_and_joins_transactions(horizon, server):
    custody = funded(horizon, xlm=0)
    wallet = Keypair.random().public_key
    ids = [horizon.pay_in(wallet, custody.public_key, (i + 1) * XLM, memo=f"dep-{i}") for i in range(5)]
    horizon.pay_in(wallet, custody.public_key, XLM, memo=99)

    builder = server.payments().for_account(custody.public_key).order(desc=False).limit(2).join("transactions")
    page = builder.call()
    seen = []
    while page["_embedded"]["records"]:
        seen += page["_embedded"]["records"]
        page = builder.next()
    assert [r["id"] for r in seen[:5]] == ids
    assert [r["paging_token"] for r in seen] == sorted((r["paging_token"] for r in seen), key=int)
    assert [r["transaction"]["memo"] for r in seen] == ["dep-0", "dep-1", "dep-2", "dep-3", "dep-4", "99"]
    assert seen[5]["transaction"]["memo_type"] == "id"
    assert seen[2]["amount"] == "3.0000000" and seen[2]["from"] == wallet
    assert all(r["transaction_successful"] for r in seen)
    assert horizon.balance(custody.public_key) == 16 * XLM

    # A stored cursor resumes strictly after that record; desc walks back from it.
    after = server.payments().for_account(custody.public_key).cursor(ids[1]).limit(10).call()
    assert [r["id"] for r in after["_embedded"]["records"]][:3] == ids[2:5]
    before = server.payments().for_account(custody.public_key).cursor(ids[3]).order(desc=True).call()
    assert [r["id"] for r in before["_embedded"]["records"]] == [ids[2], ids[1], ids[0]]
    assert "transaction" not in before["_embedded"]["records"][0]
    latest = server.payments().for_account(custody.public_key).order(desc=True).limit(1).call()
    assert latest["_embedded"]["records"][0]["transaction_hash"]
    status, _ = get(horizon, f"/accounts/{custody.public_key}/payments", limit="201")
    assert status == 400

    # The transaction record carries the memo too.
    tx = server.transactions().transaction(seen[0]["transaction_hash"]).call()
    assert tx["memo"] == "dep-0" and tx["memo_type"] == "text"


def test_outgoing_payments_and_account_transactions(horizon, server):
    alice, bob = funded(horizon), funded(horizon)
    sent = server.submit_transaction(payment(horizon, alice, bob.public_key, "1", memo=IdMemo(5)))
    horizon.pay_in(Keypair.random().public_key, alice.public_key, XLM)
    records = server.payments().for_account(alice.public_key).call()["_embedded"]["records"]
    assert [(r["from"] == alice.public_key, r["to"] == alice.public_key) for r in records] == [
        (True, False),
        (False, True),
    ]
    txs = server.transactions().for_account(bob.public_key).call()["_embedded"]["records"]
    assert [t["hash"] for t in txs] == [sent["hash"]]
    assert txs[0]["memo"] == "5"
    with pytest.raises(NotFoundError):
        server.payments().for_account(Keypair.random().public_key).call()


def test_failed_and_other_asset_pay_ins(horizon, server):
    custody, issuer = funded(horizon, xlm=0), Keypair.random().public_key
    horizon.add_trustline(custody.public_key, "EURT", issuer)
    wallet = Keypair.random().public_key
    horizon.pay_in(wallet, custody.public_key, 5 * XLM, memo="a", successful=False)
    horizon.pay_in(wallet, custody.public_key, 6 * XLM, memo="b", asset=("EURT", issuer))
    assert horizon.balance(custody.public_key) == 0
    assert horizon.balance(custody.public_key, f"EURT:{issuer}") == 6 * XLM

    default = server.payments().for_account(custody.public_key).call()["_embedded"]["records"]
    assert [(r["asset_type"], r.get("asset_code")) for r in default] == [("credit_alphanum4", "EURT")]
    everything = server.payments().for_account(custody.public_key).include_failed(True).call()
    flags = [r["transaction_successful"] for r in everything["_embedded"]["records"]]
    assert flags == [False, True]
    with pytest.raises(ValueError):
        horizon.pay_in(wallet, custody.public_key, XLM, asset=("USDC", issuer))  # no trustline


def test_friendbot_root_and_ledgers(horizon, server):
    kp = Keypair.random()
    status, body = get(horizon, "/friendbot", addr=kp.public_key)
    assert status == 200 and body["successful"] is True
    assert horizon.balance(kp.public_key) == 10_000 * XLM
    status, body = get(horizon, "/friendbot", addr=kp.public_key)
    assert status == 400 and body["extras"]["result_codes"]["operations"] == ["op_already_exists"]

    root = server.root().call()
    assert root["network_passphrase"] == PASSPHRASE
    assert root["history_latest_ledger"] == root["core_latest_ledger"] == horizon.latest_ledger
    latest = server.ledgers().order(desc=True).limit(1).call()["_embedded"]["records"][0]
    assert latest["sequence"] == horizon.latest_ledger and latest["closed_at"].endswith("Z")
    assert server.fetch_base_fee() == 100


# -- faults -----------------------------------------------------------------------------------


def test_504_after_applies_then_times_out(horizon, server):
    alice, bob = funded(horizon, sequence=1), funded(horizon)
    envelope = payment(horizon, alice, bob.public_key, "1")
    horizon.fail_next("504_after")
    with pytest.raises(BadResponseError) as exc:
        server.submit_transaction(envelope, skip_memo_required_check=True)
    assert exc.value.status == 504 and exc.value.type.endswith("/timeout")
    assert horizon.balance(bob.public_key) == 101 * XLM
    assert horizon.sequence(alice.public_key) == 2
    assert server.transactions().transaction(envelope.hash_hex()).call()["successful"] is True
    # The same envelope again: Horizon finds it by hash and answers as if it had just been applied.
    resp = server.submit_transaction(envelope, skip_memo_required_check=True)
    assert resp["hash"] == envelope.hash_hex()
    assert horizon.balance(bob.public_key) == 101 * XLM
    assert horizon.applied == [envelope.hash_hex()]


def test_504_before_applies_nothing(horizon, server):
    alice, bob = funded(horizon, sequence=1), funded(horizon)
    envelope = payment(horizon, alice, bob.public_key, "1")
    horizon.fail_next("504_before")
    with pytest.raises(BadResponseError) as exc:
        server.submit_transaction(envelope, skip_memo_required_check=True)
    assert exc.value.status == 504
    assert horizon.sequence(alice.public_key) == 1
    with pytest.raises(NotFoundError):
        server.transactions().transaction(envelope.hash_hex()).call()
    server.submit_transaction(envelope, skip_memo_required_check=True)  # resubmitted, now applied once
    assert horizon.balance(bob.public_key) == 101 * XLM


@pytest.mark.parametrize(("kind", "applied"), [("drop", False), ("drop_after", True)])
def test_dropped_connections(horizon, server, kind, applied):
    alice, bob = funded(horizon, sequence=1), funded(horizon)
    envelope = payment(horizon, alice, bob.public_key, "1")
    horizon.fail_next(kind)
    with pytest.raises(ConnectionError):
        server.submit_transaction(envelope, skip_memo_required_check=True)
    assert horizon.submitted == [envelope.hash_hex()]
    assert horizon.balance(bob.public_key) == (101 if applied else 100) * XLM
    assert horizon.sequence(alice.public_key) == (2 if applied else 1)
    if applied:
        assert server.transactions().transaction(envelope.hash_hex()).call()["hash"] == envelope.hash_hex()
    else:
        with pytest.raises(NotFoundError):
            server.transactions().transaction(envelope.hash_hex()).call()


def test_bad_seq_and_429_faults_apply_nothing(horizon, server):
    alice, bob = funded(horizon, sequence=1), funded(horizon)
    envelope = payment(horizon, alice, bob.public_key, "1")
    horizon.fail_next("bad_seq")
    horizon.fail_next("429")
    with pytest.raises(BadRequestError) as exc:
        server.submit_transaction(envelope, skip_memo_required_check=True)
    assert result_codes(exc.value) == {"transaction": "tx_bad_seq"}
    with pytest.raises(BadRequestError) as exc:
        server.submit_transaction(envelope, skip_memo_required_check=True)
    assert exc.value.status == 429 and exc.value.type.endswith("/rate_limit_exceeded")
    assert horizon.sequence(alice.public_key) == 1 and horizon.balance(bob.public_key) == 100 * XLM
    server.submit_transaction(envelope, skip_memo_required_check=True)
    assert horizon.sequence(alice.public_key) == 2
    assert horizon.pending_faults == []


def test_no_destination_fault_on_an_existing_account(horizon, server):
    alice, bob, carol = funded(horizon, sequence=1), funded(horizon), funded(horizon)
    envelope = payment(horizon, alice, bob.public_key, "1", extra=[(carol.public_key, "2")])
    horizon.fail_next("no_destination", destination=carol.public_key)
    with pytest.raises(BadRequestError) as exc:
        server.submit_transaction(envelope, skip_memo_required_check=True)
    assert result_codes(exc.value)["operations"] == ["op_success", "op_no_destination"]
    assert horizon.balance(bob.public_key) == horizon.balance(carol.public_key) == 100 * XLM
    assert horizon.sequence(alice.public_key) == 1


def test_slow_answer_past_the_client_timeout_is_still_applied(horizon):
    alice, bob = funded(horizon, sequence=1), funded(horizon)
    envelope = payment(horizon, alice, bob.public_key, "1")
    horizon.fail_next("slow", seconds=1.0)
    with Server(horizon.url, client=RequestsClient(num_retries=0, post_timeout=0.3)) as impatient:
        with pytest.raises(ConnectionError):
            impatient.submit_transaction(envelope, skip_memo_required_check=True)
    assert horizon.sequence(alice.public_key) == 1
    deadline = time.monotonic() + 5
    while horizon.transaction(envelope.hash_hex()) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert horizon.transaction(envelope.hash_hex())["successful"] is True
    assert horizon.balance(bob.public_key) == 101 * XLM


def test_slow_answer_within_the_timeout(horizon, server):
    alice, bob = funded(horizon), funded(horizon)
    horizon.fail_next("slow", seconds=0.3)
    started = time.monotonic()
    server.submit_transaction(payment(horizon, alice, bob.public_key, "1"), skip_memo_required_check=True)
    assert time.monotonic() - started >= 0.3
    assert horizon.balance(bob.public_key) == 101 * XLM


def test_down_drops_every_request(horizon, server):
    alice, bob = funded(horizon), funded(horizon)
    horizon.down = True
    with pytest.raises(ConnectionError):
        server.load_account(alice.public_key)
    with pytest.raises(ConnectionError):
        server.submit_transaction(payment(horizon, alice, bob.public_key, "1"), skip_memo_required_check=True)
    assert horizon.submitted == []
    horizon.down = False
    server.submit_transaction(payment(horizon, alice, bob.public_key, "1"), skip_memo_required_check=True)
    assert horizon.balance(bob.public_key) == 101 * XLM


def test_fault_times_and_unknown_kinds(horizon, server):
    alice, bob = funded(horizon), funded(horizon)
    horizon.fail_next("504_before", times=2)
    assert horizon.pending_faults == ["504_before", "504_before"]
    envelope = payment(horizon, alice, bob.public_key, "1")
    for _ in range(2):
        with pytest.raises(BadResponseError):
            server.submit_transaction(envelope, skip_memo_required_check=True)
    server.submit_transaction(envelope, skip_memo_required_check=True)
    with pytest.raises(ValueError):
        horizon.fail_next("explode")


def test_default_client_retries_hide_single_faults(horizon):
    """stellar_sdk's default RequestsClient retries POSTs on 504, 429 and dropped connections.

    Resending the same envelope is safe: an included one is found by hash and answered again.
    """
    alice, bob = funded(horizon, sequence=1), funded(horizon)
    with Server(horizon.url) as default_server:
        for kind in ("504_after", "drop", "drop_after", "429"):
            envelope = payment(horizon, alice, bob.public_key, "1")
            horizon.fail_next(kind)
            resp = default_server.submit_transaction(envelope, skip_memo_required_check=True)
            assert resp["hash"] == envelope.hash_hex()
            assert horizon.submitted[-2:] == [envelope.hash_hex()] * 2
    assert horizon.sequence(alice.public_key) == 5
    assert horizon.balance(bob.public_key) == 104 * XLM
    assert len(horizon.applied) == 4


def test_concurrent_submissions_from_many_accounts(horizon):
    senders = [funded(horizon, sequence=0) for _ in range(8)]
    sink = funded(horizon, xlm=0)
    errors = []

    def send(kp: Keypair) -> None:
        try:
            with Server(horizon.url, client=RequestsClient(num_retries=0)) as srv:
                for _ in range(3):
                    srv.submit_transaction(payment(horizon, kp, sink.public_key, "1"), skip_memo_required_check=True)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(kp,)) for kp in senders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert horizon.balance(sink.public_key) == 24 * XLM
    assert len(set(horizon.applied)) == 24
    assert all(horizon.sequence(kp.public_key) == 3 for kp in senders)
