from __future__ import annotations

from marshmallow import Schema, fields, validate, validates_schema
from marshmallow.exceptions import ValidationError

from streampay import money
from streampay.content.models import Content, ContentStatus
from streampay.money import Amount
from streampay.users.models import User
from streampay.users.schemas import Text

MAX_PRICE = 1000 * 10_000_000  # 1000 units per second
CATEGORY = validate.Regexp(r"^[a-z0-9][a-z0-9-]{0,39}$", error="Lowercase letters, digits and '-', up to 40.")
TAG = Text(validate=validate.Length(min=1, max=30))
SORTS = ["newest", "oldest", "price", "-price", "duration", "-duration", "title"]


class ContentSchema(Schema):
    id = fields.UUID(required=True)
    creator_id = fields.UUID(required=True)
    creator = fields.Function(lambda c: c.creator.display_name or c.creator.username, required=True)
    title = fields.String(required=True)
    description = fields.String(required=True)
    category = fields.String(required=True)
    tags = fields.List(fields.String(), required=True)
    price_per_second = Amount(required=True)
    is_published = fields.Boolean(required=True)
    status = fields.Function(
        lambda c: c.status.value, required=True, metadata={"enum": [s.value for s in ContentStatus]}
    )
    failure_reason = fields.String(allow_none=True)
    media_type = fields.String(required=True)
    size_bytes = fields.Integer(required=True)
    duration_ms = fields.Integer(allow_none=True)
    duration_seconds = fields.Function(
        lambda c: None if c.duration_ms is None else c.duration_ms // 1000,
        allow_none=True,
        metadata={"type": "integer", "description": "Whole seconds (duration_ms is exact)."},
    )
    container = fields.String(allow_none=True)
    video_codec = fields.String(allow_none=True)
    audio_codec = fields.String(allow_none=True)
    bitrate = fields.Integer(allow_none=True)
    width = fields.Integer(allow_none=True)
    height = fields.Integer(allow_none=True)
    sha256 = fields.String(allow_none=True)
    has_thumbnail = fields.Function(lambda c: c.thumbnail_key is not None, required=True, metadata={"type": "boolean"})
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)
    processed_at = fields.DateTime(allow_none=True)


# The catalogue's pages are built from a Core select of these columns, serialised by `content_row` into exactly
# what ContentSchema dumps, without loading ORM objects or marshmallow's work per field (tests hold them equal).
ROW_COLUMNS = (
    *(
        Content.__table__.c[name]
        for name in (
            "id creator_id title description category tags price_per_second is_published status failure_reason "
            "media_type size_bytes duration_ms container video_codec audio_codec bitrate width height sha256 "
            "thumbnail_key created_at updated_at processed_at"
        ).split()
    ),
    User.__table__.c.display_name,
    User.__table__.c.username,
)


def content_row(row) -> dict:
    """ContentSchema's dump of one item, from the values of ROW_COLUMNS in their order (a row of them, or its
    tail), unpacked by position: reading and writing a held item's JSON takes 28 µs of CPU where reading the
    row's 26 columns by name made it 32."""
    (
        id_,
        creator_id,
        title,
        description,
        category,
        tags,
        price_per_second,
        is_published,
        status,
        failure_reason,
        media_type,
        size_bytes,
        duration_ms,
        container,
        video_codec,
        audio_codec,
        bitrate,
        width,
        height,
        sha256,
        thumbnail_key,
        created_at,
        updated_at,
        processed_at,
        display_name,
        username,
    ) = row
    return {
        "id": str(id_),
        "creator_id": str(creator_id),
        "creator": display_name or username,
        "title": title,
        "description": description,
        "category": category,
        "tags": tags,
        "price_per_second": money.format(price_per_second),
        "is_published": is_published,
        "status": status.value,
        "failure_reason": failure_reason,
        "media_type": media_type,
        "size_bytes": size_bytes,
        "duration_ms": duration_ms,
        "duration_seconds": None if duration_ms is None else duration_ms // 1000,
        "container": container,
        "video_codec": video_codec,
        "audio_codec": audio_codec,
        "bitrate": bitrate,
        "width": width,
        "height": height,
        "sha256": sha256,
        "has_thumbnail": thumbnail_key is not None,
        "created_at": created_at.isoformat(),
        "updated_at": updated_at.isoformat(),
        "processed_at": None if processed_at is None else processed_at.isoformat(),
    }


class UploadFormSchema(Schema):
    title = Text(required=True, validate=validate.Length(min=1, max=200))
    description = Text(load_default="", validate=validate.Length(max=5000))
    category = fields.String(load_default="general", validate=CATEGORY)
    tags = Text(
        load_default="",
        validate=validate.Length(max=400),
        metadata={"description": "Comma-separated, up to 10 tags of up to 30 characters."},
    )
    price_per_second = Amount(required=True, minimum=1, maximum=MAX_PRICE)
    is_published = fields.Boolean(load_default=True)

    @validates_schema
    def _tags(self, data, **kwargs):
        tags = [t.strip() for t in data.get("tags", "").split(",") if t.strip()]
        if len(tags) > 10 or any(len(t) > 30 for t in tags):
            raise ValidationError("Up to 10 tags of up to 30 characters.", "tags")


class ContentUpdateSchema(Schema):
    title = Text(validate=validate.Length(min=1, max=200))
    description = Text(validate=validate.Length(max=5000))
    category = fields.String(validate=CATEGORY)
    tags = fields.List(TAG, validate=validate.Length(max=10))
    price_per_second = Amount(minimum=1, maximum=MAX_PRICE)
    is_published = fields.Boolean()


class CatalogueQuerySchema(Schema):
    category = fields.String(validate=CATEGORY)
    search = Text(
        validate=validate.Length(min=1, max=100),
        metadata={"description": "Case-insensitive, in title and description."},
    )
    sort = fields.String(load_default="newest", validate=validate.OneOf(SORTS))
    creator_id = fields.UUID()
