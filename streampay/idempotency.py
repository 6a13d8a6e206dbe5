"""Idempotency-Key on POSTs that create or move something, as Stripe does it.

The first request with a key runs and its response is kept for IDEMPOTENCY_KEY_HOURS; a retry
with the same key and the same request gets that response again (with `Idempotent-Replayed:
true`); the same key with a different request is 422; while the first is still running, 409.
A request refused before it ran (bad input, 5xx) keeps nothing, so it can be retried as it is.
A first request that never finished (its process died) holds its key IDEMPOTENCY_LOCK_SECONDS;
after that, a retry of the same request runs in its place. Keys are per account.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from functools import wraps

from flask import Response, current_app, request
from sqlalchemy import JSON, Index, Integer, String, Text, UniqueConstraint, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from streampay.dbtypes import UTCDateTime, utcnow
from streampay.errors import Conflict, DomainError, Invalid
from streampay.extensions import db

HEADER = "Idempotency-Key"
KEPT_HEADERS = ("Content-Type", "Location", "X-Pagination")
PARAMETER = {
    "in": "header",
    "name": HEADER,
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": "Retry safely: the same key and request get the first response again (kept 24 hours); "
    "the same key with another request is 422.",
}


class IdempotencyKey(db.Model):
    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("scope", "key", name="uq_idempotency_keys_scope_key"),
        Index("ix_idempotency_keys_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)  # None while the first request runs
    body: Mapped[str | None] = mapped_column(Text)
    headers: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class KeyReused(DomainError):
    status, code = 422, "idempotency_key_reused"


class KeyInUse(Conflict):
    code = "idempotency_key_in_use"


def _fingerprint() -> str:
    digest = hashlib.sha256(f"{request.method} {request.path}\n".encode())
    if request.is_json:
        digest.update(json.dumps(request.get_json(silent=True), sort_keys=True).encode())
    elif request.mimetype == "multipart/form-data":
        # Not the raw body: a client's retry may draw a new boundary.
        digest.update(json.dumps(sorted(request.form.items(multi=True))).encode())
        for name, upload in sorted(request.files.items(multi=True), key=lambda x: x[0]):
            digest.update(f"{name}:{upload.filename}:".encode())
            for chunk in iter(lambda upload=upload: upload.stream.read(1 << 20), b""):
                digest.update(chunk)
            upload.stream.seek(0)
    else:
        digest.update(request.get_data())
    return digest.hexdigest()


def _ttl() -> timedelta:
    return timedelta(hours=current_app.config["IDEMPOTENCY_KEY_HOURS"])


def _claim(scope: str, key: str, fingerprint: str) -> IdempotencyKey | int:
    """The stored row of an earlier request with this key, or the id of a new claim for this one."""
    for _ in range(3):
        row = IdempotencyKey(scope=scope, key=key, fingerprint=fingerprint, created_at=utcnow())
        db.session.add(row)
        try:
            db.session.commit()
            return row.id
        except IntegrityError:
            db.session.rollback()
        earlier = db.session.scalar(
            select(IdempotencyKey).where(IdempotencyKey.scope == scope, IdempotencyKey.key == key)
        )
        if earlier is None:
            continue  # expired and dropped meanwhile: claim it again
        if earlier.status_code is None and earlier.fingerprint == fingerprint and _abandoned(earlier):
            return _take_over(earlier) or earlier
        if earlier.created_at >= utcnow() - _ttl():
            return earlier
        db.session.delete(earlier)  # past its lifetime: the key is free again
        db.session.commit()
    raise KeyInUse("A request with this Idempotency-Key is still running; retry shortly.")


def _abandoned(claim: IdempotencyKey) -> bool:
    return claim.created_at < utcnow() - timedelta(seconds=current_app.config["IDEMPOTENCY_LOCK_SECONDS"])


def _take_over(claim: IdempotencyKey) -> int | None:
    """Claim the key of a request that died running; of retries racing for it, one wins."""
    won = db.session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.id == claim.id, IdempotencyKey.status_code.is_(None))
        .where(IdempotencyKey.created_at == claim.created_at)
        .values(created_at=utcnow())
    )
    db.session.commit()
    return claim.id if won.rowcount == 1 else None


def _replay(earlier: IdempotencyKey, fingerprint: str) -> Response:
    if earlier.fingerprint != fingerprint:
        raise KeyReused(
            "This Idempotency-Key was used for a different request; use a new key for a new request.",
            {"headers": {HEADER: ["Used with another request."]}},
        )
    if earlier.status_code is None:
        raise KeyInUse("A request with this Idempotency-Key is still running; retry shortly.")
    response = Response(earlier.body, status=earlier.status_code, headers=earlier.headers or {})
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _store(claim_id: int, response: Response) -> None:
    db.session.rollback()
    row = db.session.get(IdempotencyKey, claim_id)
    if row is None:
        return
    if response.status_code >= 500:
        db.session.delete(row)
    else:
        row.status_code = response.status_code
        row.body = response.get_data(as_text=True)
        row.headers = {h: response.headers[h] for h in KEPT_HEADERS if h in response.headers}
    db.session.commit()


def _forget(claim_id: int) -> None:
    db.session.rollback()
    db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == claim_id))
    db.session.commit()


def idempotent(view):
    """Put it under the route's auth and above its arguments: the key is per account."""
    # Imported here, by the routes that use it: a `flask` command loads this module for its table alone.
    from flask_jwt_extended import current_user
    from flask_smorest import Blueprint

    @wraps(view)
    def wrapper(*args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None:
            return view(*args, **kwargs)
        if not 1 <= len(key) <= 255 or not key.isprintable() or not key.isascii():
            raise Invalid("Idempotency-Key: 1 to 255 printable ASCII characters.", {"headers": {HEADER: ["Invalid."]}})
        fingerprint = _fingerprint()
        claim = _claim(str(current_user.id), key, fingerprint)
        if isinstance(claim, IdempotencyKey):
            return _replay(claim, fingerprint)
        try:
            response = current_app.make_response(view(*args, **kwargs))
        except DomainError as exc:  # the request ran and a rule said no: that answer is kept too
            response = current_app.make_response(current_app.handle_user_exception(exc))
        except BaseException:
            _forget(claim)
            raise
        _store(claim, response)
        return response

    return Blueprint.doc(parameters=[PARAMETER])(wrapper)


def prune() -> int:
    """Drop keys past their lifetime (a periodic job)."""
    result = db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < utcnow() - _ttl()))
    db.session.commit()
    return result.rowcount
