"""The ledger's rules, held by the database itself, and its operator doors (CLI) and API."""

from __future__ import annotations

import json
import threading
import uuid

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from streampay.extensions import db
from streampay.ledger import service
from streampay.ledger.models import AccountKind, Transaction
from tests.conftest import bearer, register


def credit(runner, email: str, amount: str, *extra: str):
    return runner.invoke(args=["wallet", "credit", email, amount, "--reason", "test credit", *extra])


def balance(client, who) -> dict:
    return client.get("/api/v1/wallet", headers=bearer(who["access_token"])).json


def test_operator_credit_and_debit_are_audited_postings(client, runner):
    viewer = register(client)
    email = viewer["user"]["email"]
    result = credit(runner, email, "12.5")
    assert result.exit_code == 0, result.output
    assert "balance 12.5000000" in result.output
    assert runner.invoke(args=["wallet", "debit", email, "2.25", "--reason", "refund reversal"]).exit_code == 0
    assert balance(client, viewer)["balance"] == "10.2500000"
    entries = client.get("/api/v1/wallet/ledger", headers=bearer(viewer["access_token"])).json
    assert [(e["kind"], e["amount"], e["reason"]) for e in entries] == [
        ("adjustment", "-2.2500000", "refund reversal"),
        ("adjustment", "12.5000000", "test credit"),
    ]
    assert runner.invoke(args=["ledger", "check"]).exit_code == 0


def test_an_idempotency_key_posts_once(client, runner):
    viewer = register(client)
    for _ in range(3):
        assert credit(runner, viewer["user"]["email"], "5", "--idempotency-key", "promo-42").exit_code == 0
    assert balance(client, viewer)["balance"] == "5.0000000"


@pytest.mark.parametrize("amount", ["-1", "0", "1.12345678", "abc", "1e5", ""])
def test_bad_amounts_are_refused(client, runner, amount):
    viewer = register(client)
    result = credit(runner, viewer["user"]["email"], amount)
    assert result.exit_code != 0 and "Error" in result.output
    assert balance(client, viewer)["balance"] == "0.0000000"


def test_a_debit_beyond_the_balance_is_refused(client, runner):
    viewer = register(client)
    credit(runner, viewer["user"]["email"], "1")
    result = runner.invoke(args=["wallet", "debit", viewer["user"]["email"], "1.0000001", "--reason", "x"])
    assert result.exit_code != 0 and "Not enough" in result.output
    assert balance(client, viewer)["balance"] == "1.0000000"
    assert runner.invoke(args=["wallet", "credit", "nobody@example.com", "1", "--reason", "x"]).exit_code != 0
    assert runner.invoke(args=["wallet", "credit", viewer["user"]["email"], "1", "--reason", "  "]).exit_code != 0


def test_the_database_forbids_overdrafts_and_duplicate_keys(app, client, runner):
    viewer = register(client)
    credit(runner, viewer["user"]["email"], "1")
    with app.app_context():
        wallet = service.wallet(viewer["user"]["id"] and __import__("uuid").UUID(viewer["user"]["id"]))
        with pytest.raises(IntegrityError):
            db.session.execute(text("UPDATE ledger_accounts SET balance = -1 WHERE id = :id"), {"id": wallet.id})
            db.session.flush()
        db.session.rollback()
        with pytest.raises(IntegrityError):
            db.session.execute(text("UPDATE ledger_accounts SET held = balance + 1 WHERE id = :id"), {"id": wallet.id})
            db.session.flush()
        db.session.rollback()
        key = db.session.query(Transaction.idempotency_key).first()[0]
        with pytest.raises(IntegrityError):
            db.session.add(Transaction(idempotency_key=key, kind="adjustment", details={}))
            db.session.flush()
        db.session.rollback()


def test_postings_must_balance(app, client):
    viewer = register(client)
    import uuid

    with app.app_context():
        wallet = service.wallet(uuid.UUID(viewer["user"]["id"]))
        fees = service.platform(AccountKind.PLATFORM_FEES)
        with pytest.raises(ValueError, match="unbalanced"):
            service.post([service.Leg(wallet, 5), service.Leg(fees, -4)], "k1", "adjustment")
        with pytest.raises(TypeError):
            service.post([service.Leg(wallet, 0.5), service.Leg(fees, -0.5)], "k2", "adjustment")


def test_ledger_check_finds_a_tampered_balance(app, client, runner):
    viewer = register(client)
    credit(runner, viewer["user"]["email"], "3")
    assert runner.invoke(args=["ledger", "check"]).exit_code == 0
    with app.app_context():
        db.session.execute(text("UPDATE ledger_accounts SET balance = balance + 1 WHERE kind = 'viewer_wallet'"))
        db.session.commit()
    result = runner.invoke(args=["ledger", "check"])
    assert result.exit_code == 1 and "VIOLATION" in result.output


def at_once(app, times: int, attempt) -> list:
    """`attempt(n)` in `times` threads released together, each in its own app context; what each returned."""
    outcomes: list = []
    barrier = threading.Barrier(times)

    def run(n: int) -> None:
        with app.app_context():
            barrier.wait()
            try:
                outcomes.append(attempt(n))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(times)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def test_concurrent_debits_never_overdraw_or_lose_an_update(app, client, runner):
    """Twenty debits of 1 against a wallet of 10, all at once: exactly ten succeed."""
    viewer = register(client)
    credit(runner, viewer["user"]["email"], "10")

    def debit(n: int) -> int:
        try:
            service.adjust(uuid.UUID(viewer["user"]["id"]), -10_000_000, "race", f"race-{n}")
            return 1
        except service.InsufficientFunds:
            return 0

    assert sorted(at_once(app, 20, debit)) == [0] * 10 + [1] * 10
    assert balance(client, viewer)["balance"] == "0.0000000"
    assert runner.invoke(args=["ledger", "check"]).exit_code == 0


def test_one_key_posted_at_once_by_many_posts_once_and_another_payload_is_a_conflict(app, client, runner):
    """Ten postings of one key at once, two of them with another amount: one transaction, the rest replays of it
    or conflicts with it."""
    viewer = register(client)
    credit(runner, viewer["user"]["email"], "10")

    def debit(n: int):
        try:
            amount = -20_000_000 if n < 2 else -10_000_000
            return service.adjust(uuid.UUID(viewer["user"]["id"]), amount, "race", "one-key").id
        except service.IdempotencyConflict:
            return "conflict"

    outcomes = at_once(app, 10, debit)
    ids = {o for o in outcomes if o != "conflict"}
    assert len(ids) == 1 and outcomes.count("conflict") in (2, 8), outcomes
    assert balance(client, viewer)["balance"] in ("9.0000000", "8.0000000")
    assert runner.invoke(args=["ledger", "check"]).exit_code == 0


def test_a_refused_posting_leaves_nothing_of_its_transaction(app, client, runner):
    """An overdraft refused by the database takes the caller's earlier writes of that transaction with it."""
    viewer = register(client)
    credit(runner, viewer["user"]["email"], "1")
    with app.app_context():
        wallet = service.wallet(uuid.UUID(viewer["user"]["id"]))
        fees = service.platform(AccountKind.PLATFORM_FEES)
        service.post([service.Leg(wallet, -5), service.Leg(fees, 5)], "first-part", "charge", commit=False)
        with pytest.raises(service.InsufficientFunds):
            service.post([service.Leg(wallet, -10_000_000), service.Leg(fees, 10_000_000)], "second", "charge")
        keys = db.session.scalars(select(Transaction.idempotency_key)).all()
        assert "first-part" not in keys and "second" not in keys
        db.session.rollback()
    assert balance(client, viewer)["balance"] == "1.0000000"
    assert runner.invoke(args=["ledger", "check"]).exit_code == 0


def test_a_wallet_read_with_the_accounts_a_charge_pays_is_fresh_and_makes_what_is_missing(app, client, runner):
    viewer, creator = register(client), register(client, role="creator")
    credit(runner, viewer["user"]["email"], "3")
    with app.app_context():
        viewer_id, creator_id = uuid.UUID(viewer["user"]["id"]), uuid.UUID(creator["user"]["id"])
        assert service.wallet(viewer_id).balance == 30_000_000
        credit(runner, viewer["user"]["email"], "1")  # another connection, while this session holds the old row
        wallet, earnings, fees = service.wallet_with(
            viewer_id, (AccountKind.CREATOR_EARNINGS, creator_id), (AccountKind.PLATFORM_FEES, None)
        )
        assert (wallet.kind, wallet.balance) == (AccountKind.VIEWER_WALLET, 40_000_000)
        assert (earnings.kind, earnings.user_id, earnings.balance) == (AccountKind.CREATOR_EARNINGS, creator_id, 0)
        assert fees.kind is AccountKind.PLATFORM_FEES and fees.user_id is None
        assert service.wallet_with(viewer_id) == [wallet]
        with pytest.raises(ValueError, match="needs"):
            service.wallet_with(viewer_id, (AccountKind.CREATOR_EARNINGS, None))
        db.session.rollback()


def test_wallet_shows_deposit_details_when_a_custody_account_is_set(app_factory):
    from stellar_sdk import Keypair

    custody = Keypair.random()
    app = app_factory(STELLAR_MASTER_SECRET_KEY=custody.secret)
    client = app.test_client()
    viewer = register(client)
    reply = client.get("/api/v1/wallet", headers=bearer(viewer["access_token"]))
    deposit = reply.json["deposit"]
    assert deposit["address"] == custody.public_key
    assert deposit["memo"].isdigit()
    assert deposit["muxed_address"].startswith("M")
    assert custody.secret not in json.dumps(reply.json)


def test_wallet_needs_a_token(client):
    assert client.get("/api/v1/wallet").status_code == 401
    assert client.get("/api/v1/wallet/ledger").status_code == 401
    assert client.get("/api/v1/payments").status_code == 401
