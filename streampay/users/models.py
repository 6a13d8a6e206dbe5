from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from streampay.dbtypes import UTCDateTime, str_enum, utcnow
from streampay.extensions import db


class Role(enum.StrEnum):
    VIEWER = "viewer"
    CREATOR = "creator"
    ADMIN = "admin"


# Kinds of mail a user can turn off, each on its own.
MAIL_KINDS = ("balance_low", "payout_sent", "payout_refused")


class User(db.Model):
    __tablename__ = "users"
    __table_args__ = (Index("ix_users_created", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    username: Mapped[str] = mapped_column(String(32), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(
        str_enum(Role, "role"),
        default=Role.VIEWER,
    )
    is_active: Mapped[bool] = mapped_column(default=True)
    display_name: Mapped[str | None] = mapped_column(String(64))
    bio: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A payout address proven by a SEP-10 challenge signed with its key; also signs the user in.
    stellar_address: Mapped[str | None] = mapped_column(String(56), unique=True)
    stellar_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Kinds of mail (MAIL_KINDS) the user turned off.
    email_opt_outs: Mapped[list[str]] = mapped_column(JSON, default=list)

    @property
    def email_notifications(self) -> dict[str, bool]:
        return {kind: kind not in (self.email_opt_outs or []) for kind in MAIL_KINDS}

    def __repr__(self) -> str:
        return f"<User {self.username} {self.role.value}>"
