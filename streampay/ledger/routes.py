from __future__ import annotations

import io
import uuid

import segno
from flask import Response, request
from flask_jwt_extended import current_user
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from streampay import csvexport, money
from streampay.errors import NotFound
from streampay.extensions import db
from streampay.idempotency import idempotent
from streampay.ledger import service
from streampay.ledger.models import Account, Entry, Transaction
from streampay.money import Amount
from streampay.pagination import page_of
from streampay.users.access import auth_required
from streampay.users.models import Role, User

blp = Blueprint("wallet", __name__, description="Your balance, what is held for running streams, and your ledger.")


class DepositSchema(Schema):
    address = fields.String(allow_none=True, metadata={"description": "The custody account (G...)."})
    memo = fields.String(allow_none=True, metadata={"description": "Put this in the memo (type id) of a deposit."})
    muxed_address = fields.String(allow_none=True, metadata={"description": "Or pay this muxed (M...) address."})
    payment_uri = fields.String(
        allow_none=True, metadata={"description": "A SEP-7 web+stellar:pay URI of the deposit, for wallet apps."}
    )


class WalletSchema(Schema):
    balance = Amount(required=True)
    held = Amount(required=True)
    available = Amount(required=True)
    earnings = Amount(required=True, metadata={"description": "Creator earnings not yet paid out."})
    deposit = fields.Nested(DepositSchema, required=True)


class EntrySchema(Schema):
    id = fields.Integer(required=True)
    transaction_id = fields.Integer(required=True)
    account = fields.Function(lambda e: e.account.kind.value, required=True)
    kind = fields.Function(lambda e: e.transaction.kind, required=True)
    amount = Amount(required=True, metadata={"description": "Positive: money in; negative: money out."})
    reason = fields.Function(lambda e: e.transaction.reason, allow_none=True)
    details = fields.Function(lambda e: e.transaction.details, required=True)
    created_at = fields.DateTime(required=True)


def deposit_info(wallet_id: int) -> dict:
    from streampay.ledger.deposit import deposit_details

    return deposit_details(wallet_id)


@blp.route("", methods=["GET"])
@auth_required()
@blp.response(200, WalletSchema)
def wallet():
    """Balance, held (reserved by running streams), available, and how to deposit."""
    w = service.wallet(current_user.id)
    e = service.earnings(current_user.id)
    db.session.commit()
    return {
        "balance": w.balance,
        "held": w.held,
        "available": w.balance - w.held,
        "earnings": e.balance,
        "deposit": deposit_info(w.id),
    }


def _ledger_csv():
    accounts = [service.wallet(current_user.id).id, service.earnings(current_user.id).id]
    db.session.commit()

    def page(after):
        stmt = (
            select(Entry.id, Entry.created_at, Entry.transaction_id, Account.kind, Transaction.kind, Entry.amount)
            .add_columns(Transaction.reason)
            .join(Transaction, Transaction.id == Entry.transaction_id)
            .join(Account, Account.id == Entry.account_id)
            .where(Entry.account_id.in_(accounts))
            .order_by(Entry.id.desc())
        )
        return stmt if after is None else stmt.where(Entry.id < after)

    rows = (
        (i, at, txn, account.value, kind, money.format(amount), reason)
        for i, at, txn, account, kind, amount, reason in csvexport.keyset(page, lambda row: row[0])
    )
    header = ["id", "created_at", "transaction_id", "account", "kind", "amount", "reason"]
    return csvexport.stream("ledger.csv", header, rows)


@blp.route("/ledger", methods=["GET"])
@auth_required()
@blp.response(200, EntrySchema(many=True))
@blp.doc(**csvexport.doc(EntrySchema(many=True)))
@csvexport.offered(_ledger_csv)
@blp.paginate()
def ledger(pagination_parameters):
    """Your wallet's and earnings' entries, newest first (CSV: `format=csv` or `Accept: text/csv`)."""
    accounts = [service.wallet(current_user.id).id, service.earnings(current_user.id).id]
    db.session.commit()
    stmt = select(Entry).join(Transaction).where(Entry.account_id.in_(accounts)).order_by(Entry.id.desc())
    return page_of(stmt, pagination_parameters)


@blp.route("/deposit/qr", methods=["GET"])
@auth_required()
@blp.response(200, description="An SVG QR code of the deposit's SEP-7 `web+stellar:pay` URI.")
@blp.alt_response(404, description="No custody account is configured.")
def deposit_qr():
    """The deposit request (custody address, memo, asset) as a QR code that a wallet app scans."""
    w = service.wallet(current_user.id)
    db.session.commit()
    uri = deposit_info(w.id)["payment_uri"]
    if uri is None:
        raise NotFound("Deposits are not configured (no custody account).")
    svg = io.BytesIO()
    segno.make(uri, error="m").save(svg, kind="svg", border=4, omitsize=True, title="Deposit QR code", svgclass=None)
    return Response(svg.getvalue(), mimetype="image/svg+xml", headers={"Cache-Control": "private, max-age=300"})


class AdjustmentRequestSchema(Schema):
    user_id = fields.UUID(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(["credit", "debit"]))
    amount = Amount(required=True, minimum=1)
    reason = fields.String(required=True, validate=[validate.Length(min=1, max=200), validate.Regexp(r"^[^\x00]*$")])


class AdjustmentSchema(Schema):
    transaction_id = fields.Integer(required=True)
    user_id = fields.UUID(required=True)
    kind = fields.String(required=True)
    amount = Amount(required=True)
    balance = Amount(required=True, metadata={"description": "The wallet's balance after it."})


@blp.route("/adjustments", methods=["POST"])
@auth_required(Role.ADMIN)
@idempotent
@blp.arguments(AdjustmentRequestSchema)
@blp.response(201, AdjustmentSchema)
def adjust(body):
    """Credit or debit a user's wallet, with a reason kept on the posting (admin). A debit never takes
    more than is available: 409 `insufficient_funds`."""
    user = db.session.get(User, body["user_id"])
    if user is None:
        raise NotFound("No such user.")
    key = request.headers.get("Idempotency-Key")
    amount = body["amount"] if body["kind"] == "credit" else -body["amount"]
    txn = service.adjust(
        user.id,
        amount,
        body["reason"],
        f"adjustment:{current_user.id}:{key}" if key else f"adjustment:{uuid.uuid4()}",
        created_by=current_user.id,
    )
    balance = service.wallet(user.id).balance
    return {
        "transaction_id": txn.id,
        "user_id": user.id,
        "kind": body["kind"],
        "amount": body["amount"],
        "balance": balance,
    }
