"""GET /analytics/creator, /analytics/content/{id}, /analytics/platform: JSON, or the series as CSV."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta

from flask import jsonify, request
from flask_jwt_extended import current_user
from flask_smorest import Blueprint

from streampay import csvexport, money
from streampay.analytics import flows, queries, schemas
from streampay.analytics.batch import Batch
from streampay.analytics.queries import Period
from streampay.errors import Forbidden, Invalid, NotFound
from streampay.extensions import db, without_transaction
from streampay.users.access import auth_required
from streampay.users.models import Role, User

blp = Blueprint("analytics", __name__, description="What was earned, watched, paid out and deposited, by period.")


def _period(query: dict) -> Period:
    zone = schemas.zone(query["tz"])
    last = query.get("to") or datetime.now(zone).date()
    first = query.get("from_") or last - timedelta(days=29)
    if first > last:
        raise Invalid("`from` is after `to`.", {"query": {"from": ["After `to`."]}})
    if last - first > timedelta(days=schemas.MAX_DAYS):  # `from` alone, far back: `to` is today
        raise Invalid(f"At most {schemas.MAX_DAYS} days at once.", {"query": {"from": ["Too far before `to`."]}})
    return Period(first, last, zone, query["granularity"])


def _period_body(period: Period, tz: str) -> dict:
    return {
        "from_": period.first,
        "to": period.last,
        "tz": tz,
        "granularity": period.granularity,
        "start": period.start_at,
        "end": period.end_at,
    }


ONE = 10**money.PLACES
AMOUNTS = frozenset(
    ("gross", "fees", "net", "paid_out", "deposits", "deposits_unmatched", "custody", "payouts_in_flight")
)


def _amount(v: int) -> str:
    if v < 0:
        return money.format(v)
    whole, part = divmod(v, ONE)
    return f"{whole}.{part:07d}"  # money.format, inlined


def _points(series: queries.Series) -> list[dict]:
    """A series' points as the schema documents them, built in one pass: a year by day is 365 points."""
    keys = ("period", "start", *series.names)
    amounts = [i + 2 for i, n in enumerate(series.names) if n in AMOUNTS]
    out = []
    for labels, values in zip(series.labels, series.values, strict=True):
        shown = [*labels, *values]
        for i in amounts:
            shown[i] = _amount(shown[i])
        out.append(dict(zip(keys, shown, strict=True)))
    return out


def _flat(points: list[dict]) -> list[dict]:
    """Series points, list entries or curve steps (each list's entries share their keys): amounts as strings,
    dates and times in ISO 8601, the rest as they are."""
    if not points:
        return []
    amounts = [k for k in points[0] if k in AMOUNTS]
    dates = [k for k, v in points[0].items() if isinstance(v, date)]
    out = []
    for point in points:
        flat = dict(point)
        for k in amounts:
            flat[k] = _amount(flat[k])
        for k in dates:
            flat[k] = flat[k].isoformat()
        out.append(flat)
    return out


def _present(value, key: str | None = None):
    """The body as the schema documents it, written without marshmallow: a year by day is 365 points, each
    flat (lists hold points, top entries or curve steps)."""
    if isinstance(value, dict):
        return {("from" if k == "from_" else k): _present(v, k) for k, v in value.items()}
    if isinstance(value, queries.Series):
        return _points(value)
    if isinstance(value, list):
        return _flat(value)
    if key in AMOUNTS:
        return money.format(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value


def _json(body: dict):
    return jsonify(_present(body))


def _top(rows: list[tuple], order: str, key: str, name: str) -> list[dict]:
    return [{key: sid, name: label, **figures} for sid, label, figures in queries.ranked(rows, order)]


def _series_csv(name: str, series: queries.Series, columns: tuple[str, ...]):
    header = ["period", "start", *columns]
    at = [(series.names.index(c), c in AMOUNTS) for c in columns]

    def rows():
        for (period, start), values in zip(series.labels, series.values, strict=True):
            yield [period, start] + [money.format(values[i]) if amount else values[i] for i, amount in at]

    return csvexport.stream(f"{name}.csv", header, rows())


SERIES_COLUMNS = ("gross", "fees", "net", "watch_seconds", "watch_ms", "sessions")


def _creator_id(query: dict) -> uuid.UUID:
    wanted = query.get("creator_id")
    if current_user.role == Role.ADMIN:
        if wanted is None:
            raise Invalid("An admin names the creator.", {"query": {"creator_id": ["Required for admins."]}})
        if db.session.get(User, wanted) is None:
            raise NotFound("No such creator.")
        return wanted
    if wanted is not None and wanted != current_user.id:
        raise Forbidden("A creator reads only their own analytics.")
    return current_user.id


@blp.before_request
def _reads_without_transaction():
    """A dashboard only reads, one statement per read. A request with no token is refused before it reads
    anything, so it takes no database connection at all."""
    if "Authorization" in request.headers:
        without_transaction()


TOP_CONTENT = {"by_earnings": "net", "by_watch_time": "watch_ms"}


@blp.route("/creator", methods=["GET"])
@auth_required(Role.CREATOR, Role.ADMIN)
@blp.arguments(schemas.CreatorQuerySchema, location="query")
@blp.response(200, schemas.CreatorAnalyticsSchema)
@blp.doc(**csvexport.doc(schemas.CreatorAnalyticsSchema))
def creator(query):
    """A creator's totals, series and top content for a period of local days."""
    creator_id = _creator_id(query)
    period, cid, as_csv = _period(query), str(creator_id), csvexport.wanted()
    batch = Batch()
    flows.add_paid(batch, period, creator_id)
    queries.add_series(batch, "creator", cid, period)
    if not as_csv:
        queries.add_unique_viewers(batch, "creator", cid, period)
        queries.add_ranked(batch, "content", period, TOP_CONTENT, query["top"], cid)
    rows = batch.run()
    series = queries.series(period, rows["series"], {"paid_out": rows["paid_out"]})
    if as_csv:
        return _series_csv(f"creator-{period.first}-{period.last}", series, (*SERIES_COLUMNS, "paid_out"))
    return _json(
        {
            "creator_id": cid,
            "period": _period_body(period, query["tz"]),
            "totals": {**series.totals(), "unique_viewers": queries.unique_viewers(rows["viewers"])},
            "series": series,
            "top_content": {name: _top(rows[name], o, "content_id", "title") for name, o in TOP_CONTENT.items()},
        }
    )


@blp.route("/content/<uuid:content_id>", methods=["GET"])
@auth_required()
@blp.arguments(schemas.PeriodQuerySchema, location="query")
@blp.response(200, schemas.ContentAnalyticsSchema)
@blp.doc(**csvexport.doc(schemas.ContentAnalyticsSchema))
def content(query, content_id: uuid.UUID):
    """One item's totals, series and retention curve (from billed time) for a period of local days."""
    period, key, as_csv = _period(query), str(content_id), csvexport.wanted()
    batch = Batch()
    queries.add_item(batch, content_id)  # read with the figures, shown only once the item is found to be theirs
    queries.add_series(batch, "content", key, period)
    if not as_csv:
        queries.add_retention(batch, key, period)
        queries.add_unique_viewers(batch, "content", key, period)
    rows = batch.run()
    item = queries.item(rows["item"])
    if item is None or not (current_user.role == Role.ADMIN or item[0] == current_user.id):
        raise NotFound("No such content of yours.")
    _, title, duration_ms = item
    series = queries.series(period, rows["series"])
    if as_csv:
        return _series_csv(f"content-{key}-{period.first}-{period.last}", series, SERIES_COLUMNS)
    ended, curve = queries.retention(rows["retention"])
    return _json(
        {
            "content_id": key,
            "title": title,
            "period": _period_body(period, query["tz"]),
            "totals": {**series.totals(), "unique_viewers": queries.unique_viewers(rows["viewers"])},
            "series": series,
            "retention": {"sessions": ended, "duration_ms": duration_ms, "curve": curve},
        }
    )


@blp.route("/platform", methods=["GET"])
@auth_required(Role.ADMIN)
@blp.arguments(schemas.PeriodQuerySchema, location="query")
@blp.response(200, schemas.PlatformAnalyticsSchema)
@blp.doc(**csvexport.doc(schemas.PlatformAnalyticsSchema))
def platform(query):
    """The platform's day: charges, fees, deposits, payouts, custody, sessions and new users."""
    period, as_csv = _period(query), csvexport.wanted()
    scope, scope_id = queries.platform_scope()
    batch = Batch()
    flows.add_platform(batch, period)
    queries.add_series(batch, scope, scope_id, period)
    if not as_csv:
        queries.add_unique_viewers(batch, scope, scope_id, period)
        queries.add_ranked(batch, "creator", period, {"top_creators": "gross"}, query["top"], None)
        queries.add_ranked(batch, "content", period, {"top_content": "gross"}, query["top"], None)
        flows.add_now(batch)
    rows = batch.run()
    extra = {name: rows[name] for name in ("paid_out", "deposits", "new_users")}
    series = queries.series(period, rows["series"], extra)
    if as_csv:
        columns = (*SERIES_COLUMNS, "paid_out", "deposits", "new_users")
        return _series_csv(f"platform-{period.first}-{period.last}", series, columns)
    totals = {
        **series.totals(),
        "deposits_unmatched": flows.unmatched(rows["deposits"]),
        "unique_viewers": queries.unique_viewers(rows["viewers"]),
    }
    return _json(
        {
            "period": _period_body(period, query["tz"]),
            "totals": totals,
            "now": flows.now(rows["now"]),
            "series": series,
            "top_creators": _top(rows["top_creators"], "gross", "creator_id", "username"),
            "top_content": _top(rows["top_content"], "gross", "content_id", "title"),
        }
    )
