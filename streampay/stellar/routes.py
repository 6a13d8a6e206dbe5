"""The Stellar routes: SEP-10 sign-in, accounts on the network, the stream contract, payouts.

The services behind them import the Stellar SDK, which takes half a second: the views import them
when called, so a `flask` command does not pay for it; a server imports them before it serves
(`streampay.preload`).
"""

from __future__ import annotations

import re

from flask import current_app
from flask_jwt_extended import current_user, verify_jwt_in_request
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import and_, or_, select

from streampay import csvexport, money
from streampay.errors import Conflict, NotFound
from streampay.extensions import limiter
from streampay.idempotency import idempotent
from streampay.money import Amount
from streampay.pagination import page_of
from streampay.stellar.models import Payout
from streampay.stellar.schemas import PayoutSchema
from streampay.users.access import PUBLIC, auth_rate_limit, auth_required
from streampay.users.models import Role
from streampay.users.schemas import UserSchema

blp = Blueprint("stellar", __name__, description="Address proof (SEP-10), wallet sign-in, accounts on the network.")
payouts_blp = Blueprint("payouts", __name__, description="Your payouts on Stellar, with transaction hashes.")
ADDRESS = validate.Regexp(r"^G[A-Z2-7]{55}$", error="A Stellar account address: G followed by 55 characters.")


class ChallengeRequestSchema(Schema):
    account = fields.String(required=True, validate=ADDRESS)


class ChallengeSchema(Schema):
    transaction = fields.String(required=True, metadata={"description": "Sign it with the account's key."})
    network_passphrase = fields.String(required=True)


class VerifyRequestSchema(Schema):
    transaction = fields.String(required=True, validate=validate.Length(min=1, max=20_000))


class VerifyResultSchema(Schema):
    account = fields.String(required=True)
    linked = fields.Boolean(required=True)
    user = fields.Nested(UserSchema, required=True)
    access_token = fields.String()
    refresh_token = fields.String()
    token_type = fields.String()
    expires_in = fields.Integer()


class BalanceSchema(Schema):
    asset_type = fields.String(required=True)
    asset_code = fields.String()
    asset_issuer = fields.String()
    balance = fields.String(required=True, metadata={"example": "12.5000000"})


class AccountBalancesSchema(Schema):
    account = fields.String(required=True)
    sequence = fields.String(required=True)
    balances = fields.List(fields.Nested(BalanceSchema), required=True)


class TransactionsQuerySchema(Schema):
    cursor = fields.String(
        validate=validate.Regexp(
            r"^(now|[0-9]{1,20})$", flags=re.ASCII, error="A cursor is a next_cursor from a page, or now."
        ),
        metadata={"description": "The `next_cursor` of the previous page."},
    )
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=200))
    order = fields.String(load_default="desc", validate=validate.OneOf(["asc", "desc"]))


class HorizonTransactionSchema(Schema):
    hash = fields.String(required=True)
    ledger = fields.Integer(allow_none=True)
    created_at = fields.String(allow_none=True)
    successful = fields.Boolean(allow_none=True)
    memo = fields.String(allow_none=True)
    memo_type = fields.String(allow_none=True)
    source_account = fields.String(allow_none=True)
    fee_charged = fields.String(allow_none=True)
    paging_token = fields.String(required=True)


class TransactionsPageSchema(Schema):
    records = fields.List(fields.Nested(HorizonTransactionSchema), required=True)
    next_cursor = fields.String(allow_none=True)


class StreamContractRequestSchema(Schema):
    content_id = fields.UUID(required=True)
    rate = Amount(required=True, minimum=1, metadata={"description": "Per second, as the contract is to stream."})


class StreamContractSchema(Schema):
    transaction = fields.String(required=True, metadata={"description": "Unsigned XDR for the viewer's wallet."})
    network_passphrase = fields.String(required=True)
    prepared = fields.Boolean(required=True)
    contract_id = fields.String(required=True)


@blp.route("/auth/challenge", methods=["POST"])
@blp.doc(**PUBLIC)
@limiter.limit(auth_rate_limit)
@blp.arguments(ChallengeRequestSchema)
@blp.response(200, ChallengeSchema)
def challenge(body):
    """A SEP-10 challenge for an account: sign it with that account's key, then post it to /auth/verify."""
    from streampay.stellar import sep10

    return sep10.challenge(body["account"])


@blp.route("/auth/verify", methods=["POST"])
@blp.doc(security=[{}, {"bearerAuth": []}])
@limiter.limit(auth_rate_limit)
@blp.arguments(VerifyRequestSchema)
@blp.response(200, VerifyResultSchema)
def verify(body):
    """Signed in: links the proven account as your payout address. Signed out: signs in its user."""
    from streampay.stellar import sep10

    verify_jwt_in_request(optional=True)
    account = sep10.verify(body["transaction"])
    if current_user:
        return {"account": account, "linked": True, "user": sep10.link(current_user, account)}
    return {"account": account, "linked": False, **sep10.sign_in(account)}


@blp.route("/accounts/<string:address>/balances", methods=["GET"])
@auth_required()
@blp.response(200, AccountBalancesSchema)
def balances(address: str):
    """An account's balances on the network."""
    from streampay.stellar import horizon

    record = horizon.load_account_record(address)
    return {"account": record["account_id"], "sequence": record["sequence"], "balances": record["balances"]}


@blp.route("/accounts/<string:address>/transactions", methods=["GET"])
@auth_required()
@blp.arguments(TransactionsQuerySchema, location="query")
@blp.response(200, TransactionsPageSchema)
def transactions(query, address: str):
    """An account's transactions on the network, a page at a time (pass next_cursor back as cursor)."""
    from stellar_sdk.exceptions import BaseRequestError, NotFoundError

    from streampay.stellar import horizon

    horizon.check_address(address)
    try:

        def page(s):
            builder = s.transactions().for_account(address).limit(query["limit"]).order(desc=query["order"] == "desc")
            return (builder.cursor(query["cursor"]) if query.get("cursor") else builder).call()

        records = horizon.call(page)["_embedded"]["records"]
    except NotFoundError as exc:
        raise NotFound("No such account on the network.") from exc
    except BaseRequestError as exc:
        raise horizon.refusal(exc) from exc
    return {"records": records, "next_cursor": records[-1]["paging_token"] if records else None}


@blp.route("/contract/stream", methods=["POST"])
@auth_required()
@blp.arguments(StreamContractRequestSchema)
@blp.response(200, StreamContractSchema)
def contract_stream(body):
    """The unsigned Soroban call initialize_stream(content_id, rate) for your linked account's wallet."""
    from streampay.stellar import soroban

    if not current_user.stellar_address:
        raise Conflict("Link a Stellar account first (SEP-10: /stellar/auth/challenge and /verify).")
    return soroban.stream_invocation(current_user.stellar_address, str(body["content_id"]), body["rate"])


def _payouts_csv():
    creator_id = current_user.id

    def page(after):
        stmt = (
            select(Payout.created_at, Payout.id, Payout.amount, Payout.status, Payout.destination, Payout.tx_hash)
            .add_columns(Payout.ledger, Payout.status_changed_at, Payout.reason)
            .where(Payout.creator_id == creator_id)
            .order_by(Payout.created_at.desc(), Payout.id.desc())
        )
        if after is None:
            return stmt
        at, pid = after
        return stmt.where(or_(Payout.created_at < at, and_(Payout.created_at == at, Payout.id < pid)))

    rows = (
        (pid, at, money.format(amount), status.value, destination, tx_hash, ledger, changed, reason)
        for at, pid, amount, status, destination, tx_hash, ledger, changed, reason in csvexport.keyset(
            page, lambda row: (row[0], row[1])
        )
    )
    header = ["id", "created_at", "amount", "status", "destination", "tx_hash", "ledger", "status_changed_at", "reason"]
    return csvexport.stream("payouts.csv", header, rows)


@payouts_blp.route("", methods=["GET"])
@auth_required()
@payouts_blp.response(200, PayoutSchema(many=True))
@payouts_blp.doc(**csvexport.doc(PayoutSchema(many=True)))
@csvexport.offered(_payouts_csv)
@payouts_blp.paginate()
def payouts(pagination_parameters):
    """Your payouts, newest first: amount, status, transaction hash and ledger."""
    stmt = select(Payout).where(Payout.creator_id == current_user.id).order_by(Payout.created_at.desc(), Payout.id)
    return page_of(stmt, pagination_parameters)


class PayoutRunSchema(Schema):
    in_flight = fields.Integer(required=True)
    paid = fields.Integer(required=True)
    refused = fields.Integer(required=True)
    returned = fields.Integer(required=True)
    open_batches = fields.Integer(required=True)
    at = fields.String(required=True)
    held_by_another_run = fields.List(fields.Integer(), required=True)


@payouts_blp.route("/runs", methods=["POST"])
@auth_required(Role.ADMIN)
@idempotent
@payouts_blp.response(200, PayoutRunSchema)
def run_payouts():
    """Run payouts now (admin), as the clock does: settle open batches, then pay every creator who is due.
    Counts are of all payouts by status."""
    from streampay.stellar import payouts as payout_engine

    if not current_app.config.get("STELLAR_MASTER_SECRET_KEY"):
        raise Conflict("Payouts need STELLAR_MASTER_SECRET_KEY (the custody account).")
    return payout_engine.run()
