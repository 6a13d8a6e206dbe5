from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, Index, String, Text, and_
from sqlalchemy.orm import Mapped, mapped_column, relationship

from streampay.dbtypes import StateMachine, UTCDateTime, on_postgresql, str_enum, utcnow
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


_c = Content.__table__.c  # plain columns: a Core statement of them skips the ORM's loading machinery

# What everyone may see in the catalogue. The sort indexes below are partial on exactly this expression, so a
# query must write it the same way (PostgreSQL matches an index's predicate by its form) to be served by them.
VISIBLE = and_(_c.deleted_at.is_(None), _c.status == ContentStatus.READY, _c.is_published.is_(True))

# The catalogue's sort orders; the id makes each order total, so a page never repeats or skips an item.
ORDER = {
    "newest": (_c.created_at.desc(), _c.id),
    "oldest": (_c.created_at, _c.id),
    "price": (_c.price_per_second, _c.created_at.desc(), _c.id),
    "-price": (_c.price_per_second.desc(), _c.created_at.desc(), _c.id),
    "duration": (_c.duration_ms, _c.created_at.desc(), _c.id),
    "-duration": (_c.duration_ms.desc(), _c.created_at.desc(), _c.id),
    "title": (_c.title, _c.id),
}


def _postgresql_index(name: str, *expressions, **options) -> Index:
    """An index made on PostgreSQL alone; `info` tells the migrations' autogenerate (which ignores ddl_if)."""
    return Index(name, *expressions, info={"dialect": "postgresql"}, **options).ddl_if(dialect="postgresql")


@on_postgresql
def _catalogue_indexes() -> None:
    """One index per sort order, alone and within a category, holding the visible items in exactly that order
    (any page is an index-only walk); and pg_trgm's indexes serving the search's ILIKE '%term%'. PostgreSQL
    only: SQLite's embedded catalogues are small."""
    for sort, keys in ORDER.items():
        name = sort.removeprefix("-") + ("_desc" if sort.startswith("-") else "")
        for prefix, columns in (("", ()), ("category_", (_c.category,))):
            _postgresql_index(f"ix_content_visible_{prefix}{name}", *columns, *keys, postgresql_where=VISIBLE)
    for column in ("title", "description"):
        _postgresql_index(
            f"ix_content_{column}_trgm",
            _c[column],
            postgresql_using="gin",
            postgresql_ops={column: "gin_trgm_ops"},
        )
