"""Operator credits and debits over HTTP and the CLI: an idempotency key is bound to its posting."""

from __future__ import annotations

import pytest

from streampay.money import MAX_STROOPS, format
from tests.conftest import bearer, register

ADJUST = "/api/v1/wallet/adjustments"


@pytest.fixture
def admin(make_admin):
    return make_admin()


@pytest.fixture
def viewer(client):
    return register(client)


def adjust(client, admin, key: str | None = None, **body):
    headers = bearer(admin["access_token"]) | ({"Idempotency-Key": key} if key else {})
    return client.post(ADJUST, json={"kind": "credit", "reason": "goodwill", **body}, headers=headers)


def wallet(client, who) -> dict:
    return client.get("/api/v1/wallet", headers=bearer(who["access_token"])).json


def ledger_lines(client, who) -> list:
    return client.get("/api/v1/wallet/ledger", headers=bearer(who["access_token"])).json


def test_a_replay_with_the_same_body_returns_the_first_posting(client, admin, viewer):
    first = adjust(client, admin, "grant-1", user_id=viewer["user"]["id"], amount="5")
    assert first.status_code == 201, first.json
    again = adjust(client, admin, "grant-1", user_id=viewer["user"]["id"], amount="5")
    assert again.status_code == 201, again.json
    assert again.json["transaction_id"] == first.json["transaction_id"]
    assert wallet(client, viewer)["balance"] == "5.0000000"
    assert len(ledger_lines(client, viewer)) == 1


@pytest.mark.parametrize(
    "change",
    [{"amount": "6"}, {"kind": "debit", "amount": "1"}, {"user": "other"}],
    ids=["amount", "direction", "user"],
)
def test_a_replay_with_another_body_is_a_conflict_and_posts_nothing(client, runner, admin, viewer, change):
    other = register(client)
    assert adjust(client, admin, "grant-2", user_id=viewer["user"]["id"], amount="5").status_code == 201
    body = {"user_id": viewer["user"]["id"], "amount": "5", **change}
    if body.pop("user", None):
        body["user_id"] = other["user"]["id"]
    reply = adjust(client, admin, "grant-2", **body)
    assert reply.status_code == 422 and reply.json["error"] == "idempotency_key_reused", reply.json
    assert wallet(client, viewer)["balance"] == "5.0000000" and wallet(client, other)["balance"] == "0.0000000"
    assert len(ledger_lines(client, viewer)) == 1 and ledger_lines(client, other) == []
    assert runner.invoke(args=["ledger", "check"]).exit_code == 0


def test_the_cli_refuses_a_key_reused_for_another_amount(client, runner, viewer):
    email = viewer["user"]["email"]
    args = ["wallet", "credit", email, "--reason", "promo", "--idempotency-key", "promo-7"]
    assert runner.invoke(args=[*args[:3], "3", *args[3:]]).exit_code == 0
    same = runner.invoke(args=[*args[:3], "3", *args[3:]])
    assert same.exit_code == 0, same.output
    changed = runner.invoke(args=[*args[:3], "4", *args[3:]])
    assert changed.exit_code == 1 and type(changed.exception) is SystemExit, changed.output
    assert "different posting" in changed.output
    debit = runner.invoke(args=["wallet", "debit", email, "3", "--reason", "promo", "--idempotency-key", "promo-7"])
    assert debit.exit_code == 1 and "different posting" in debit.output
    assert wallet(client, viewer)["balance"] == "3.0000000"


@pytest.mark.parametrize(
    "amount",
    [
        format(MAX_STROOPS + 1),  # one stroop past a 64-bit column
        "99999999999999999999",
        "\u0661\u0662",  # Arabic-Indic digits
        "\uff11\uff12",  # full-width digits
        "1\u00b2",
        "1.\u0665",
        "-1",
        "1.00000001",
        "1e3",
    ],
)
def test_amounts_beyond_64_bits_or_in_other_digits_are_422(client, runner, admin, viewer, amount):
    reply = adjust(client, admin, user_id=viewer["user"]["id"], amount=amount)
    assert reply.status_code == 422, reply.json
    assert "amount" in reply.json["errors"]["json"]
    result = runner.invoke(args=["wallet", "credit", "--reason", "x", viewer["user"]["email"], "--", amount])
    assert result.exit_code == 1 and type(result.exception) is SystemExit, result.output
    assert "Error:" in result.output
    assert wallet(client, viewer)["balance"] == "0.0000000"


def test_a_balance_past_64_bits_is_refused_and_not_called_insufficient_funds(client, runner, admin, viewer):
    top = format(MAX_STROOPS)
    assert adjust(client, admin, user_id=viewer["user"]["id"], amount=top).status_code == 201
    reply = adjust(client, admin, user_id=viewer["user"]["id"], amount="0.0000001")
    assert reply.status_code == 422, reply.json
    assert "insufficient" not in reply.json["message"].lower() and "past" in reply.json["message"]
    result = runner.invoke(args=["wallet", "credit", viewer["user"]["email"], "0.0000001", "--reason", "x"])
    assert result.exit_code == 1 and type(result.exception) is SystemExit, result.output
    assert "insufficient" not in result.output.lower() and "Not enough" not in result.output
    assert wallet(client, viewer)["balance"] == top
    assert runner.invoke(args=["ledger", "check"]).exit_code == 0


def test_a_debit_past_the_balance_is_insufficient_funds(client, admin, viewer):
    assert adjust(client, admin, user_id=viewer["user"]["id"], amount="1").status_code == 201
    reply = adjust(client, admin, user_id=viewer["user"]["id"], amount="2", kind="debit")
    assert reply.status_code == 409 and "Not enough" in reply.json["message"], reply.json


def test_adjustments_are_for_admins(client, viewer):
    reply = client.post(
        ADJUST,
        json={"user_id": viewer["user"]["id"], "kind": "credit", "amount": "1", "reason": "me"},
        headers=bearer(viewer["access_token"]),
    )
    assert reply.status_code == 403


def test_a_reason_that_is_not_text_is_refused_by_the_cli(client, runner, viewer):
    result = runner.invoke(args=["wallet", "credit", viewer["user"]["email"], "1", "--reason", "bad \udcff byte"])
    assert result.exit_code == 1 and type(result.exception) is SystemExit, result.output
    assert wallet(client, viewer)["balance"] == "0.0000000"


@pytest.mark.parametrize(
    "args",
    [
        ["wallet", "credit", "who\udcff@example.com", "1", "--reason", "x"],
        ["wallet", "credit", "{email}", "1", "--reason", "x", "--idempotency-key", "k\udce9"],
        ["deposits", "assign", "1", "who\udcff@example.com"],
    ],
    ids=["email", "key", "assign"],
)
def test_cli_arguments_that_are_not_text_get_a_message_not_a_traceback(client, runner, viewer, args):
    args = [a.replace("{email}", viewer["user"]["email"]) for a in args]
    result = runner.invoke(args=args)
    assert result.exit_code == 1 and type(result.exception) is SystemExit, result.output
    assert "Error:" in result.output and "not text" in result.output
