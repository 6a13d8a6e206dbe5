"""JWT issue, rotation and revocation on flask-jwt-extended, with revocation kept in the database.

Every token carries `fam`, the id of the sign-in it descends from (a row of `auth_sign_ins`).
Logout revokes the whole sign-in; a refresh token works once, and presenting a spent one revokes
its sign-in too (someone else holds a copy). Checking a token costs no extra round trip: the
sign-in's revoked state (and, for a refresh token, whether it was spent) comes back in the same
query that loads the user. Redis plays no part, so a Redis wipe revives nothing.
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta

from flask import Flask, current_app, g
from sqlalchemy import and_, bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError

from streampay.auth.models import SignIn, SpentRefreshToken
from streampay.dbtypes import utcnow
from streampay.errors import error_body
from streampay.extensions import db
from streampay.users import signals
from streampay.users.models import Role, User

_signing_refresh: ContextVar[bool] = ContextVar("signing_refresh", default=False)


def issue_pair(user: User, family: str | None = None) -> dict:
    """A new access and refresh token; a new sign-in unless `family` (a refresh) continues one."""
    from flask_jwt_extended import create_access_token, create_refresh_token

    if family is None:
        family = uuid.uuid4().hex
        db.session.add(SignIn(id=family, user_id=user.id))
    else:
        db.session.execute(update(SignIn).where(SignIn.id == family).values(last_issued_at=utcnow()))
    db.session.commit()
    claims = {"fam": family}
    identity = str(user.id)
    access = create_access_token(identity=identity, additional_claims=claims)
    token = _signing_refresh.set(True)
    try:
        refresh = create_refresh_token(identity=identity, additional_claims=claims)
    finally:
        _signing_refresh.reset(token)
    expires_in = int(current_app.config["JWT_ACCESS_TOKEN_EXPIRES"].total_seconds())
    return {"access_token": access, "refresh_token": refresh, "token_type": "Bearer", "expires_in": expires_in}


def _expiry(payload: dict) -> datetime:
    exp = payload.get("exp")
    if exp is None:
        return utcnow() + current_app.config["JWT_REFRESH_TOKEN_EXPIRES"]
    return datetime.fromtimestamp(exp, UTC) + timedelta(seconds=1)


def mark_rotated(payload: dict) -> bool:
    """Spend a refresh token; False when it was already spent (a replay)."""
    try:
        with db.session.begin_nested():
            db.session.add(
                SpentRefreshToken(jti=payload["jti"], sign_in_id=payload.get("fam") or "-", expires_at=_expiry(payload))
            )
    except IntegrityError:
        db.session.rollback()
        return False
    db.session.commit()
    return True


def revoke(payload: dict, reason: str = "logout") -> None:
    """Revoke every token of this token's sign-in (logout, or a detected replay); sockets of it close."""
    family = payload.get("fam")
    if not family:
        return
    now = utcnow()
    done = db.session.execute(
        update(SignIn)
        .where(SignIn.id == family, SignIn.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    ).rowcount
    if not done and db.session.get(SignIn, family) is None:
        # A sign-in from before revocation was recorded: record it revoked.
        db.session.add(SignIn(id=family, user_id=uuid.UUID(payload["sub"]), revoked_at=now, revoked_reason=reason))
    db.session.commit()
    signals.access_revoked.send(current_app._get_current_object(), user_id=payload["sub"], sign_in=family, why=reason)


def standing(pairs: set[tuple[str, str | None]]) -> dict[tuple[str, str | None], tuple[Role | None, str | None]]:
    """Where each (user id, sign-in) stands now, one query a thousand: the account's role (None when it is
    deactivated or gone) and why the sign-in was revoked (None while it stands). For sockets that may have missed
    the push of a revocation."""
    roles, revoked, pairs = {}, {}, sorted(pairs, key=str)
    for i in range(0, len(pairs), 1000):
        chunk = pairs[i : i + 1000]
        rows = db.session.execute(
            select(User.id, User.role, User.is_active, SignIn.id, SignIn.revoked_at, SignIn.revoked_reason)
            .outerjoin(SignIn, and_(SignIn.user_id == User.id, SignIn.id.in_({f for _, f in chunk if f})))
            .where(User.id.in_({uuid.UUID(u) for u, _ in chunk}))
        )
        for user_id, role, active, family, revoked_at, reason in rows:
            roles[str(user_id)] = role if active else None
            if revoked_at is not None:
                revoked[(str(user_id), family)] = reason or "logout"
    db.session.rollback()
    return {pair: (roles.get(pair[0]), revoked.get(pair)) for pair in pairs}


def _revoke_every_sign_in(_app: Flask, *, user_id: uuid.UUID) -> None:
    """An account deactivated: every sign-in of it ends for good, in the deactivating transaction (no commit here)."""
    db.session.execute(
        update(SignIn)
        .where(SignIn.user_id == user_id, SignIn.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason="deactivated")
    )


def prune() -> int:
    """Forget what can no longer matter: spent refresh tokens past their expiry, and sign-ins whose
    newest pair is older than the refresh lifetime (every token of them has expired)."""
    now = utcnow()
    spent = db.session.execute(delete(SpentRefreshToken).where(SpentRefreshToken.expires_at < now)).rowcount
    horizon = now - current_app.config["JWT_REFRESH_TOKEN_EXPIRES"] - timedelta(seconds=2)
    families = db.session.execute(delete(SignIn).where(SignIn.last_issued_at < horizon)).rowcount
    db.session.commit()
    return spent + families


# Built once: every authenticated request and every socket's opening runs one of them (SQLAlchemy then skips to its
# compiled form). The token's user, its sign-in's revoked time and, for a refresh token, whether it was spent.
_HOLDER = (
    select(User, SignIn.revoked_at)
    .outerjoin(SignIn, and_(SignIn.id == bindparam("family"), SignIn.user_id == User.id))
    .where(User.id == bindparam("user_id"))
)
_REFRESH_HOLDER = _HOLDER.outerjoin(SpentRefreshToken, SpentRefreshToken.jti == bindparam("jti")).add_columns(
    SpentRefreshToken.jti
)


def _holder(payload: dict) -> tuple[User | None, bool]:
    """One query: the token's user, and whether its sign-in is revoked (or, for a refresh token, it was spent)."""
    try:
        user_id = uuid.UUID(payload["sub"])
    except (KeyError, ValueError, TypeError, AttributeError):
        return None, False
    params = {"user_id": user_id, "family": str(payload.get("fam") or "")}
    if payload.get("type") == "refresh":
        row = db.session.execute(_REFRESH_HOLDER, {**params, "jti": str(payload.get("jti"))}).first()
    else:
        row = db.session.execute(_HOLDER, params).first()
    if row is None:
        return None, False
    user, revoked_at, *spent = row
    if spent and spent[0] is not None:
        revoke(payload, "refresh_reuse")  # a replayed refresh token: whoever holds the sign-in is not trusted
        return user, True
    return user, revoked_at is not None


def _is_revoked(_header: dict, payload: dict) -> bool:
    user, revoked = _holder(payload)
    g.streampay_token_holder = (payload.get("jti"), user)  # for _load_user: the same request, no second query
    return revoked


def _load_user(_header: dict, payload: dict) -> User | None:
    jti, user = g.get("streampay_token_holder") or (None, None)
    if jti is None or jti != payload.get("jti"):
        user, _revoked = _holder(payload)
    return user if user is not None and user.is_active else None


def _unauthorized(message: str):
    return error_body(401, "Unauthorized", message), 401, {"WWW-Authenticate": "Bearer"}


def init_app(app: Flask) -> None:
    """A deactivated account's sign-ins end with it, whoever deactivates it (a request or a `flask` command)."""
    signals.deactivating.connect(_revoke_every_sign_in)


def init_jwt(app: Flask) -> None:
    """flask-jwt-extended, for requests: keys, revocation and the user from the database, 401s in our shape."""
    from flask_jwt_extended import JWTManager

    jwt = JWTManager(app)
    jwt.encode_key_loader(
        lambda _identity: current_app.config["JWT_REFRESH_SECRET" if _signing_refresh.get() else "JWT_SECRET_KEY"]
    )
    jwt.decode_key_loader(
        lambda _header, payload: current_app.config[
            "JWT_REFRESH_SECRET" if payload.get("type") == "refresh" else "JWT_SECRET_KEY"
        ]
    )
    jwt.token_in_blocklist_loader(_is_revoked)
    jwt.user_lookup_loader(_load_user)
    jwt.unauthorized_loader(lambda reason: _unauthorized(f"Authentication required: {reason}."))
    jwt.invalid_token_loader(lambda reason: _unauthorized(f"Invalid token: {reason}."))
    jwt.expired_token_loader(lambda _h, _p: _unauthorized("The token has expired; refresh it or sign in again."))
    jwt.revoked_token_loader(lambda _h, _p: _unauthorized("The token has been revoked; sign in again."))
    jwt.needs_fresh_token_loader(lambda _h, _p: _unauthorized("A fresh sign-in is required."))
    jwt.token_verification_failed_loader(lambda _h, _p: _unauthorized("The token failed verification."))
    jwt.user_lookup_error_loader(lambda _h, _p: _unauthorized("The account is deactivated or no longer exists."))


def user_from_token(encoded: str) -> tuple[User, dict]:
    """For callers outside an HTTP request (a WebSocket `auth` event): the active user an access token names."""
    from flask_jwt_extended import decode_token
    from jwt import PyJWTError

    from streampay.errors import Unauthorized

    try:
        payload = decode_token(encoded)
    except PyJWTError as exc:
        raise Unauthorized(f"Invalid token: {exc}.") from exc
    except Exception as exc:  # flask-jwt-extended's own decode errors
        raise Unauthorized("Invalid token.") from exc
    if payload.get("type") != "access":
        raise Unauthorized("An access token is required.")
    return holder_of(payload), payload


# What a socket's start re-checks: the account's role and state and the sign-in's revoked time, as Core columns (no
# user loaded), built once like _HOLDER.
_USERS, _SIGN_INS = User.__table__, SignIn.__table__
_STANDING = (
    select(_USERS.c.role, _USERS.c.is_active, _SIGN_INS.c.revoked_at)
    .select_from(_USERS)
    .outerjoin(_SIGN_INS, and_(_SIGN_INS.c.id == bindparam("family"), _SIGN_INS.c.user_id == _USERS.c.id))
    .where(_USERS.c.id == bindparam("user_id"))
)


def _refuse_unless_standing(revoked: bool, active: bool) -> None:
    from streampay.errors import Unauthorized

    if revoked:
        raise Unauthorized("The token has been revoked; sign in again.")
    if not active:
        raise Unauthorized("The account is deactivated or no longer exists.")


def check_standing(payload: dict, role: Role) -> None:
    """Unauthorized unless an access token's sign-in still stands and its account is active in `role`: for a socket
    about to spend on the sign-in it opened with. One query of three columns, no user loaded."""
    from streampay.errors import Unauthorized

    params = {"user_id": uuid.UUID(payload["sub"]), "family": str(payload.get("fam") or "")}
    row = db.session.execute(_STANDING, params).first()
    _refuse_unless_standing(row is not None and row.revoked_at is not None, row is not None and row.is_active)
    if row.role is not role:
        raise Unauthorized("The account's role changed; sign in again.")


def holder_of(payload: dict) -> User:
    """The active user of an access token whose sign-in still stands (one query), else Unauthorized."""
    user, revoked = _holder(payload)
    _refuse_unless_standing(revoked, user is not None and user.is_active)
    return user
