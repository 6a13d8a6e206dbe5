from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from streampay.dbtypes import StateMachine, UTCDateTime, str_enum, utcnow
from streampay.extensions import db


class SessionStatus(enum.StrEnum):
    ACTIVE = "active"
    ENDED = "ended"


class EndReason(enum.StrEnum):
    STOPPED = "stopped"
    TIMEOUT = "timeout"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    SPEND_CAP_REACHED = "spend_cap_reached"
    CONTENT_UNAVAILABLE = "content_unavailable"
    COMPLETED = "completed"
    REVOKED = "revoked"
    # A start whose meter Redis refused: ended at once, nothing billed, its hold given back. Its player got an
    # `error` `unavailable` instead of a session id, so no `streamEnded` ever reaches it (not a pushed reason).
    UNAVAILABLE = "unavailable"


PUSHED_REASONS = [r for r in EndReason if r is not EndReason.UNAVAILABLE]


TRANSITIONS = {SessionStatus.ACTIVE: {SessionStatus.ENDED}, SessionStatus.ENDED: set()}


class StreamSession(StateMachine, db.Model):
    __tablename__ = "streaming_sessions"
    TRANSITIONS = TRANSITIONS
    __table_args__ = (
        Index("ix_streaming_sessions_viewer", "viewer_id", "started_at"),
        Index("ix_streaming_sessions_content", "content_id", "started_at"),
        Index("ix_streaming_sessions_status", "status", "viewer_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    viewer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    content_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("content.id"))
    creator_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    # Terms fixed when the session starts: later price edits do not change a running bill.
    price_per_second: Mapped[int] = mapped_column(BigInteger)
    fee_bps: Mapped[int] = mapped_column(Integer)
    max_spend: Mapped[int | None] = mapped_column(BigInteger)
    # The media's duration when the session started: billed time never runs past it.
    media_ms: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[SessionStatus] = mapped_column(
        str_enum(SessionStatus, "session_status"),
        default=SessionStatus.ACTIVE,
    )
    end_reason: Mapped[str | None] = mapped_column(String(32))
    # Server-clock milliseconds since the epoch.
    started_ms: Mapped[int] = mapped_column(BigInteger)
    ended_ms: Mapped[int | None] = mapped_column(BigInteger)
    # What has been settled: billed time, charge and fee totals, and the checkpoints that posted them.
    billed_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    charged: Mapped[int] = mapped_column(BigInteger, default=0)
    fee: Mapped[int] = mapped_column(BigInteger, default=0)
    checkpoints: Mapped[int] = mapped_column(Integer, default=0)
    # Billed time covered by the money held for this session, and that money.
    window_end_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    held: Mapped[int] = mapped_column(BigInteger, default=0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Usage(db.Model):
    """What a session did, appended as it happens: its start, each charge, its end.

    An outbox the analytics rollups fold in and delete (streampay/analytics/fold.py). Rows are only
    ever inserted here, so no two checkpoints share a row, and a heartbeat writes none.
    """

    __tablename__ = "streaming_usage"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    # Server-clock milliseconds: when the charge was posted (its ledger transaction's time) or the session began.
    at_ms: Mapped[int] = mapped_column(BigInteger)
    session_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    content_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    creator_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    viewer_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    sessions: Mapped[int] = mapped_column(Integer, default=0)  # 1 on the session's start
    watch_ms: Mapped[int] = mapped_column(BigInteger, default=0)  # billed time this charge covers
    gross: Mapped[int] = mapped_column(BigInteger, default=0)  # what the viewer paid
    fee: Mapped[int] = mapped_column(BigInteger, default=0)  # the platform's part of it
    ended_ms: Mapped[int | None] = mapped_column(BigInteger)  # on the session's end: its whole billed time
