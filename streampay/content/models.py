from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from streampay.dbtypes import StateMachine, UTCDateTime, str_enum, utcnow
from streampay.extensions import db
from streampay.users.models import User


class ContentStatus(enum.StrEnum):
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"


# The only moves a content item's status may make; reprocessing starts over from either end.
TRANSITIONS: dict[ContentStatus, set[ContentStatus]] = {
    ContentStatus.PROCESSING: {ContentStatus.READY, ContentStatus.FAILED},
    ContentStatus.READY: {ContentStatus.PROCESSING},
    ContentStatus.FAILED: {ContentStatus.PROCESSING},
}


class Content(StateMachine, db.Model):
    __tablename__ = "content"
    TRANSITIONS = TRANSITIONS
    __table_args__ = (
        CheckConstraint("price_per_second > 0", name="price_positive"),
        Index("ix_content_catalogue", "status", "is_published", "created_at"),
        Index("ix_content_creator", "creator_id", "created_at"),
        Index("ix_content_category", "category", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    creator_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(40), default="general")
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    price_per_second: Mapped[int] = mapped_column(BigInteger)  # stroops
    is_published: Mapped[bool] = mapped_column(default=True)
    status: Mapped[ContentStatus] = mapped_column(
        str_enum(ContentStatus, "content_status"),
        default=ContentStatus.PROCESSING,
    )
    failure_reason: Mapped[str | None] = mapped_column(String(500))
    status_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # What the upload was, as sniffed from its bytes, and where it lives.
    original_filename: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    storage_backend: Mapped[str] = mapped_column(String(16))
    storage_key: Mapped[str] = mapped_column(String(500))
    thumbnail_key: Mapped[str | None] = mapped_column(String(500))
    # Facts the processing job found (durations in integer milliseconds).
    duration_ms: Mapped[int | None] = mapped_column(BigInteger)
    container: Mapped[str | None] = mapped_column(String(100))
    video_codec: Mapped[str | None] = mapped_column(String(40))
    audio_codec: Mapped[str | None] = mapped_column(String(40))
    bitrate: Mapped[int | None] = mapped_column(BigInteger)
    width: Mapped[int | None]
    height: Mapped[int | None]
    sha256: Mapped[str | None] = mapped_column(String(64))
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # Soft delete: the row stays so past sessions and payments keep their history.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    creator: Mapped[User] = relationship(lazy="joined")

    def move_to(self, status: ContentStatus, reason: str | None = None) -> None:
        super().move_to(status)
        self.failure_reason = reason if status is ContentStatus.FAILED else None
