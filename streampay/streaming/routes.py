from __future__ import annotations

import uuid

from flask_jwt_extended import current_user
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import or_, select

from streampay import csvexport, money
from streampay.content import delivery
from streampay.errors import NotFound
from streampay.extensions import db
from streampay.ledger.models import Entry, Transaction
from streampay.money import Amount
from streampay.pagination import page_of
from streampay.streaming import media_url
from streampay.streaming.models import StreamSession
from streampay.streaming.schemas import SessionSchema
from streampay.users.access import auth_required

blp = Blueprint("streaming", __name__, description="Your streaming sessions and what they cost.")
payments_blp = Blueprint("payments", __name__, description="Charges you paid as a viewer and earned as a creator.")


class PaymentSchema(Schema):
    transaction_id = fields.Integer(required=True, attribute="id")
    role = fields.String(required=True, metadata={"enum": ["viewer", "creator"]})
    session_id = fields.Function(lambda t: t.details.get("session_id"), required=True)
    content_id = fields.Function(lambda t: t.details.get("content_id"), required=True)
    checkpoint = fields.Function(lambda t: t.details.get("checkpoint"), required=True, metadata={"type": "integer"})
    amount = Amount(required=True, metadata={"description": "What you paid (viewer) or earned after fees (creator)."})
    created_at = fields.DateTime(required=True)


@blp.route("/sessions", methods=["GET"])
@auth_required()
@blp.response(200, SessionSchema(many=True))
@blp.paginate()
def sessions(pagination_parameters):
    """Your sessions as a viewer, newest first."""
    stmt = (
        select(StreamSession)
        .where(StreamSession.viewer_id == current_user.id)
        .order_by(StreamSession.started_at.desc(), StreamSession.id)
    )
    return page_of(stmt, pagination_parameters)


@blp.route("/sessions/<uuid:session_id>", methods=["GET"])
@auth_required()
@blp.response(200, SessionSchema)
def session(session_id: uuid.UUID):
    """One of your sessions."""
    found = db.session.get(StreamSession, session_id)
    if found is None or found.viewer_id != current_user.id:
        raise NotFound("No such session.")
    return found


def _payments_csv():
    """One row per charge you paid (viewer) or earned from (creator, after the fee), newest first."""
    from streampay.ledger import service as ledger

    wallet_id, earnings_id = ledger.wallet(current_user.id).id, ledger.earnings(current_user.id).id
    db.session.commit()

    def page(after):
        stmt = (
            select(Entry.id, Transaction.id, Transaction.created_at, Entry.account_id, Entry.amount)
            .add_columns(Transaction.details)
            .join(Transaction, Transaction.id == Entry.transaction_id)
            .where(Entry.account_id.in_([wallet_id, earnings_id]), Transaction.kind == "charge")
            .order_by(Entry.id.desc())
        )
        return stmt if after is None else stmt.where(Entry.id < after)

    def rows():
        for _, txn, at, account, amount, details in csvexport.keyset(page, lambda row: row[0]):
            role, paid = ("viewer", -amount) if account == wallet_id else ("creator", amount)
            session, content = details.get("session_id"), details.get("content_id")
            yield txn, at, role, session, content, details.get("checkpoint"), money.format(paid)

    header = ["transaction_id", "created_at", "role", "session_id", "content_id", "checkpoint", "amount"]
    return csvexport.stream("payments.csv", header, rows())


@payments_blp.route("", methods=["GET"])
@auth_required()
@payments_blp.response(200, PaymentSchema(many=True))
@payments_blp.doc(**csvexport.doc(PaymentSchema(many=True)))
@csvexport.offered(_payments_csv)
@payments_blp.paginate()
def payments(pagination_parameters):
    """Stream charges: what you paid as a viewer and what you earned as a creator, newest first."""
    from streampay.ledger import service as ledger

    wallet, earnings = ledger.wallet(current_user.id), ledger.earnings(current_user.id)
    db.session.commit()
    stmt = (
        select(Transaction)
        .where(Transaction.kind == "charge")
        .where(or_(Transaction.entries.any(account_id=wallet.id), Transaction.entries.any(account_id=earnings.id)))
        .order_by(Transaction.id.desc())
    )
    rows = page_of(stmt, pagination_parameters)
    for txn in rows:
        amounts = {e.account_id: e.amount for e in txn.entries}
        txn.role = "viewer" if wallet.id in amounts else "creator"
        txn.amount = -amounts[wallet.id] if wallet.id in amounts else amounts[earnings.id]
    return rows


class MediaUrlSchema(Schema):
    url = fields.String(required=True, metadata={"description": "Same-origin path; put it in a <video> src."})
    expires_at = fields.Integer(required=True, metadata={"description": "Epoch seconds; ask again after it."})


class MediaTokenSchema(Schema):
    token = fields.String(required=True, validate=validate.Length(max=512))


@blp.route("/sessions/<uuid:session_id>/media-url", methods=["GET"])
@auth_required()
@blp.response(200, MediaUrlSchema)
def session_media_url(session_id: uuid.UUID):
    """A short-lived signed URL of this active session's media, for players that cannot send headers."""
    return media_url.issue(session_id, current_user.id)


@blp.route("/sessions/<uuid:session_id>/media", methods=["GET"])
@blp.doc(security=[])
@blp.arguments(MediaTokenSchema, location="query")
@blp.response(200, description="The media bytes; Range requests answer 206.")
@blp.alt_response(206, description="Partial content for a Range request.")
@blp.alt_response(302, description="Redirect to the storage's own short-lived URL (S3, IPFS gateway).")
@blp.alt_response(403, description="The URL is bad or expired, or its session has ended.")
def session_media(query, session_id: uuid.UUID):
    """The session's media bytes through a signed URL from `media-url`: only while the session is active."""
    content = media_url.playable(session_id, query["token"])
    return delivery.send(content.storage_backend, content.storage_key, content.media_type)
