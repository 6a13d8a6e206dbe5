from __future__ import annotations

from datetime import date, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from streampay.money import Amount

MAX_DAYS = 3 * 366 + 1
# The days a period may name: a period's default start (29 days before), its buckets' edges and its instants in any
# zone stay within what a date holds (year 1 to 9999), and nobody's figures fall outside them.
DAYS = validate.Range(min=date(1970, 1, 1), max=date(2999, 12, 31), error="A day from 1970-01-01 to 2999-12-31.")


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def zone(name: str) -> ZoneInfo:
    if name not in _zones():
        raise ValidationError("Not an IANA time zone, e.g. UTC, Europe/Berlin or Asia/Kolkata.")
    return ZoneInfo(name)


class PeriodQuerySchema(Schema):
    from_ = fields.Date(
        data_key="from",
        validate=DAYS,
        metadata={"description": "First local day (default: 29 days before `to`), from 1970-01-01 to 2999-12-31."},
    )
    to = fields.Date(
        validate=DAYS,
        metadata={"description": "Last local day, included (default: today in `tz`), up to 2999-12-31."},
    )
    granularity = fields.String(load_default="day", validate=validate.OneOf(["day", "week", "month"]))
    tz = fields.String(
        load_default="UTC", validate=zone, metadata={"description": "An IANA zone: days begin at its midnight."}
    )
    top = fields.Integer(load_default=10, validate=validate.Range(min=1, max=100))
    format = fields.String(validate=validate.OneOf(["json", "csv"]), metadata={"description": "csv: the series."})

    @validates_schema
    def _period(self, data, **kwargs):
        first, last = data.get("from_"), data.get("to")
        if first and last and first > last:
            raise ValidationError("`from` is after `to`.", "from")
        if first and last and last - first > timedelta(days=MAX_DAYS):
            raise ValidationError(f"At most {MAX_DAYS} days at once.", "to")


class CreatorQuerySchema(PeriodQuerySchema):
    creator_id = fields.UUID(metadata={"description": "Admins: whose figures (creators read their own)."})


class FiguresSchema(Schema):
    gross = Amount(required=True, metadata={"description": "What viewers paid."})
    fees = Amount(required=True, metadata={"description": "The platform's part of it."})
    net = Amount(required=True, metadata={"description": "What creators earned: gross less fees."})
    watch_ms = fields.Integer(required=True, metadata={"description": "Billed time, exact."})
    watch_seconds = fields.Integer(required=True, metadata={"description": "Billed time, whole seconds."})
    sessions = fields.Integer(required=True, metadata={"description": "Sessions started."})


class ContentTotalsSchema(FiguresSchema):
    unique_viewers = fields.Integer(required=True)


class TotalsSchema(ContentTotalsSchema):
    paid_out = Amount(required=True, metadata={"description": "Payouts confirmed on the network."})


class ContentPointSchema(FiguresSchema):
    period = fields.Date(required=True, metadata={"description": "The bucket's first local day."})
    start = fields.DateTime(required=True, metadata={"description": "Its local midnight, with the zone's offset."})


class PointSchema(ContentPointSchema):
    paid_out = Amount(required=True)


class TopContentSchema(FiguresSchema):
    content_id = fields.String(required=True)
    title = fields.String(allow_none=True)


class TopListsSchema(Schema):
    by_earnings = fields.List(fields.Nested(TopContentSchema), required=True)
    by_watch_time = fields.List(fields.Nested(TopContentSchema), required=True)


class PeriodSchema(Schema):
    from_ = fields.Date(data_key="from", required=True)
    to = fields.Date(required=True)
    tz = fields.String(required=True)
    granularity = fields.String(required=True)
    start = fields.DateTime(required=True, metadata={"description": "The period's first instant."})
    end = fields.DateTime(required=True, metadata={"description": "The instant after its last."})


class CreatorAnalyticsSchema(Schema):
    creator_id = fields.String(required=True)
    period = fields.Nested(PeriodSchema, required=True)
    totals = fields.Nested(TotalsSchema, required=True)
    series = fields.List(fields.Nested(PointSchema), required=True)
    top_content = fields.Nested(TopListsSchema, required=True)


class RetentionPointSchema(Schema):
    percent = fields.Integer(required=True, metadata={"description": "How far into the item: 0, 5, ... 100."})
    sessions = fields.Integer(required=True, metadata={"description": "Sessions billed at least that far."})
    share = fields.Float(required=True, metadata={"description": "Their share of the sessions, 0..1."})


class RetentionSchema(Schema):
    sessions = fields.Integer(required=True, metadata={"description": "Sessions that ended in the period."})
    duration_ms = fields.Integer(allow_none=True)
    curve = fields.List(fields.Nested(RetentionPointSchema), required=True)


class ContentAnalyticsSchema(Schema):
    content_id = fields.String(required=True)
    title = fields.String(required=True)
    period = fields.Nested(PeriodSchema, required=True)
    totals = fields.Nested(ContentTotalsSchema, required=True)
    series = fields.List(fields.Nested(ContentPointSchema), required=True)
    retention = fields.Nested(RetentionSchema, required=True)


class PlatformTotalsSchema(TotalsSchema):
    deposits = Amount(required=True, metadata={"description": "Deposits received into custody."})
    deposits_unmatched = Amount(required=True, metadata={"description": "The part no memo matched."})
    new_users = fields.Integer(required=True)


class PlatformPointSchema(PointSchema):
    deposits = Amount(required=True)
    new_users = fields.Integer(required=True)


class NowSchema(Schema):
    custody = Amount(required=True, metadata={"description": "What the ledger says the platform holds on-chain."})
    payouts_in_flight = Amount(required=True)
    active_sessions = fields.Integer(required=True)


class TopCreatorSchema(FiguresSchema):
    creator_id = fields.String(required=True)
    username = fields.String(allow_none=True)


class PlatformAnalyticsSchema(Schema):
    period = fields.Nested(PeriodSchema, required=True)
    totals = fields.Nested(PlatformTotalsSchema, required=True)
    now = fields.Nested(NowSchema, required=True)
    series = fields.List(fields.Nested(PlatformPointSchema), required=True)
    top_creators = fields.List(fields.Nested(TopCreatorSchema), required=True)
    top_content = fields.List(fields.Nested(TopContentSchema), required=True)
