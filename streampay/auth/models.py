"""Revocation, kept in the database: a Redis wipe or restart brings no signed-out token back.

A sign-in is the family every token of one login descends from (the tokens' `fam` claim): signing
out or a replayed refresh token revokes it, and with it every access and refresh token it issued.
A refresh token works once: spending it records its `jti`, so a second use is seen as a replay.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from streampay.dbtypes import UTCDateTime, utcnow
from streampay.extensions import db


class SignIn(db.Model):
    __tablename__ = "auth_sign_ins"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the tokens' `fam` claim
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When its newest pair was issued: a refresh lifetime later, none of its tokens is valid any more.
    last_issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Why: logout, refresh_reuse, deactivated (every sign-in of the account).
    revoked_reason: Mapped[str | None] = mapped_column(String(32))


class SpentRefreshToken(db.Model):
    __tablename__ = "auth_spent_refresh_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    sign_in_id: Mapped[str] = mapped_column(String(64), index=True)
    spent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When the token would have expired anyway: past it, the row may be pruned.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
