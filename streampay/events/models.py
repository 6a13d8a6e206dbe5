"""An event row is written beside the change it reports and fanned out by a job after the commit."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from streampay.dbtypes import UTCDateTime, utcnow
from streampay.extensions import db

EVENT_TYPES = (
    "payout.paid",
    "payout.refused",
    "deposit.credited",
    "deposit.unmatched",
    "session.ended",
    "balance.low",
    "content.ready",
    "content.failed",
)
# Only platform-wide (admin) endpoints hear these: they concern no one user.
PLATFORM_ONLY = frozenset({"deposit.unmatched"})
TEST_EVENT = "webhook.test"


class Event(db.Model):
    __tablename__ = "events"
    __table_args__ = (Index("ix_events_undispatched", "dispatched_at", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    type: Mapped[str] = mapped_column(String(40))
    # The users whose endpoints (and mailboxes) hear it; platform-wide endpoints hear every event.
    user_ids: Mapped[list[str]] = mapped_column(JSON)
    data: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set once its deliveries (and mail) are written: a sweep picks up any the fast path missed.
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def body(self) -> dict:
        """What a receiver gets: the Standard Webhooks payload with our event id."""
        return {"id": self.id, "type": self.type, "timestamp": self.created_at.isoformat(), "data": self.data}
