from __future__ import annotations

import io
import uuid

import segno
from flask import Response, request
from flask_jwt_extended import current_user
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from streampay.errors import Invalid, NotFound
from streampay.extensions import db
from streampay.ledger import service
from streampay.ledger.models import Entry, Transaction
from streampay.money import Amount
from streampay.pagination import page_of
from streampay.users.access import auth_required
from streampay.users.models import Role
from streampay.users.service import get_user

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


@blp.route("/ledger", methods=["GET"])
@auth_required()
@blp.response(200, EntrySchema(many=True))
@blp.paginate()
def ledger(pagination_parameters):
    """Your wallet's and earnings' entries, newest first."""
    accounts = [service.wallet(current_user.id).id, service.earnings(current_user.id).id]
    db.session.commit()
    stmt = select(Entry).join(Transaction).where(Entry.account_id.in_(accounts)).order_by(Entry.id.desc())
    return page_of(stmt, pagination_parameters)


class AdjustmentSchema(Schema):
    user_id = fields.UUID(required=True, metadata={"description": "Whose wallet."})
    direction = fields.String(required=True, validate=validate.OneOf(["credit", "debit"]))
    amount = Amount(required=True, minimum=1)
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))


class AdjustmentResultSchema(Schema):
    transaction_id = fields.Integer(required=True)
    idempotency_key = fields.String(required=True)
    user_id = fields.UUID(required=True)
    amount = Amount(required=True, metadata={"description": "Signed: positive a credit, negative a debit."})
    reason = fields.String(required=True)
    balance = Amount(required=True, metadata={"description": "The wallet's balance now."})
    created_at = fields.DateTime(required=True)


@blp.route("/adjustments", methods=["POST"])
@auth_required(Role.ADMIN)
@blp.arguments(AdjustmentSchema)
@blp.response(201, AdjustmentResultSchema)
@blp.alt_response(409, description="Not enough available funds, or the Idempotency-Key was used for another posting.")
def adjust(body):
    """Credit or debit a viewer's wallet with a reason (admin; an audited posting).

    Send `Idempotency-Key` to retry safely: the same key and body return the first posting; the same
    key with another user, direction, amount or kind is a 409 and posts nothing.
    """
    user = get_user(body["user_id"])
    sign = 1 if body["direction"] == "credit" else -1
    key = request.headers.get("Idempotency-Key") or f"adjustment:{uuid.uuid4()}"
    if len(key) > 200:
        raise Invalid("An Idempotency-Key is at most 200 characters.", {"Idempotency-Key": ["Too long."]})
    txn = service.adjust(user.id, sign * body["amount"], body["reason"], key, current_user.id)
    return {
        "transaction_id": txn.id,
        "idempotency_key": key,
        "user_id": user.id,
        "amount": sign * body["amount"],
        "reason": txn.reason,
        "balance": service.wallet(user.id).balance,
        "created_at": txn.created_at,
    }


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
