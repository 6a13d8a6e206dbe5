"""GET /analytics/creator, /analytics/content/{id}, /analytics/platform: JSON, or the series as CSV."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta

from flask import jsonify
from flask_jwt_extended import current_user
from flask_smorest import Blueprint
from sqlalchemy import select

from streampay import csvexport, money
from streampay.analytics import flows, queries, schemas
from streampay.analytics.queries import Period
from streampay.content.models import Content
from streampay.errors import Forbidden, Invalid, NotFound
from streampay.extensions import db
from streampay.users.access import auth_required
from streampay.users.models import Role, User

blp = Blueprint("analytics", __name__, description="What was earned, watched, paid out and deposited, by period.")


def _period(query: dict) -> Period:
    zone = schemas.zone(query["tz"])
    last = query.get("to") or datetime.now(zone).date()
    first = query.get("from_") or last - timedelta(days=29)
    if first > last:
        raise Invalid("`from` is after `to`.", {"query": {"from": ["After `to`."]}})
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


def _figures(sums: dict) -> dict:
    gross, fee, watch_ms = sums.get("gross", 0), sums.get("fee", 0), sums.get("watch_ms", 0)
    extra = {k: v for k, v in sums.items() if k not in queries.FIGURES}
    return {
        "gross": gross,
        "fees": fee,
        "net": gross - fee,
        "watch_ms": watch_ms,
        "watch_seconds": watch_ms // 1000,
        "sessions": sums.get("sessions", 0),
        **extra,
    }


def _totals(series: list[dict]) -> dict:
    """The period's totals: the sum of its series, which covers it exactly (one query fewer)."""
    keys = [k for k in series[0] if k not in ("period", "start")] if series else []
    totals = {k: sum(p[k] for p in series) for k in keys}
    if "watch_ms" in totals:  # the whole seconds of the total, not a sum of each point's rounded-down seconds
        totals["watch_seconds"] = totals["watch_ms"] // 1000
    return totals


ONE = 10**money.PLACES
AMOUNTS = frozenset(
    ("gross", "fees", "net", "paid_out", "deposits", "deposits_unmatched", "custody", "payouts_in_flight")
)


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
            v = flat[k]
            flat[k] = f"{v // ONE}.{v % ONE:07d}" if v >= 0 else money.format(v)  # money.format, inlined
        for k in dates:
            flat[k] = flat[k].isoformat()
        out.append(flat)
    return out


def _present(value, key: str | None = None):
    """The body as the schema documents it, written without marshmallow: a year by day is 365 points, each
    flat (lists hold points, top entries or curve steps)."""
    if isinstance(value, dict):
        return {("from" if k == "from_" else k): _present(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return _flat(value)
    if key in AMOUNTS:
        return money.format(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value


def _json(body: dict):
    return jsonify(_present(body))


def _titles(ids: list[str]) -> dict[str, str]:
    if not ids:
        return {}
    rows = db.session.execute(select(Content.id, Content.title).where(Content.id.in_([uuid.UUID(i) for i in ids])))
    return {str(i): title for i, title in rows}


def _top_content(period: Period, orders: dict[str, str], limit: int, owner: str | None = None) -> dict[str, list]:
    lists = queries.ranked("content", period, orders, limit, owner)
    titles = _titles(sorted({r["id"] for rows in lists.values() for r in rows}))
    return {
        name: [{"content_id": r["id"], "title": titles.get(r["id"]), **_figures(r)} for r in rows]
        for name, rows in lists.items()
    }


def _series_csv(name: str, series: list[dict], columns: tuple[str, ...]):
    header = ["period", "start", *columns]

    def rows():
        for point in series:
            yield [point["period"], point["start"]] + [
                money.format(point[c]) if c in AMOUNTS else point[c] for c in columns
            ]

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


@blp.route("/creator", methods=["GET"])
@auth_required(Role.CREATOR, Role.ADMIN)
@blp.arguments(schemas.CreatorQuerySchema, location="query")
@blp.response(200, schemas.CreatorAnalyticsSchema)
@blp.doc(**csvexport.doc(schemas.CreatorAnalyticsSchema))
def creator(query):
    """A creator's totals, series and top content for a period of local days."""
    creator_id = _creator_id(query)
    period, cid = _period(query), str(creator_id)
    paid = flows.paid_out(period, creator_id)
    series = [_figures(p) for p in queries.series("creator", cid, period, {"paid_out": paid})]
    if csvexport.wanted():
        return _series_csv(f"creator-{period.first}-{period.last}", series, (*SERIES_COLUMNS, "paid_out"))
    totals = {**_totals(series), "unique_viewers": queries.unique_viewers("creator", cid, period)}
    return _json(
        {
            "creator_id": cid,
            "period": _period_body(period, query["tz"]),
            "totals": totals,
            "series": series,
            "top_content": _top_content(period, {"by_earnings": "net", "by_watch_time": "watch_ms"}, query["top"], cid),
        }
    )


@blp.route("/content/<uuid:content_id>", methods=["GET"])
@auth_required()
@blp.arguments(schemas.PeriodQuerySchema, location="query")
@blp.response(200, schemas.ContentAnalyticsSchema)
@blp.doc(**csvexport.doc(schemas.ContentAnalyticsSchema))
def content(query, content_id: uuid.UUID):
    """One item's totals, series and retention curve (from billed time) for a period of local days."""
    item = db.session.get(Content, content_id)
    if item is None or not (current_user.role == Role.ADMIN or item.creator_id == current_user.id):
        raise NotFound("No such content of yours.")
    period, key = _period(query), str(content_id)
    series = [_figures(p) for p in queries.series("content", key, period)]
    if csvexport.wanted():
        return _series_csv(f"content-{key}-{period.first}-{period.last}", series, SERIES_COLUMNS)
    ended, curve = queries.retention(key, period)
    return _json(
        {
            "content_id": key,
            "title": item.title,
            "period": _period_body(period, query["tz"]),
            "totals": {**_totals(series), "unique_viewers": queries.unique_viewers("content", key, period)},
            "series": series,
            "retention": {"sessions": ended, "duration_ms": item.duration_ms, "curve": curve},
        }
    )


@blp.route("/platform", methods=["GET"])
@auth_required(Role.ADMIN)
@blp.arguments(schemas.PeriodQuerySchema, location="query")
@blp.response(200, schemas.PlatformAnalyticsSchema)
@blp.doc(**csvexport.doc(schemas.PlatformAnalyticsSchema))
def platform(query):
    """The platform's day: charges, fees, deposits, payouts, custody, sessions and new users."""
    period = _period(query)
    scope, scope_id = queries.platform_scope()
    extra, unmatched = flows.platform(period)
    series = [_figures(p) for p in queries.series(scope, scope_id, period, extra)]
    if csvexport.wanted():
        columns = (*SERIES_COLUMNS, "paid_out", "deposits", "new_users")
        return _series_csv(f"platform-{period.first}-{period.last}", series, columns)
    totals = {
        **_totals(series),
        "deposits_unmatched": unmatched,
        "unique_viewers": queries.unique_viewers(scope, scope_id, period),
    }
    creators = queries.ranked("creator", period, {"top": "gross"}, query["top"])["top"]
    names = dict(
        db.session.execute(
            select(User.id, User.username).where(User.id.in_([uuid.UUID(r["id"]) for r in creators]))
        ).all()
    )
    return _json(
        {
            "period": _period_body(period, query["tz"]),
            "totals": totals,
            "now": flows.now(),
            "series": series,
            "top_creators": [
                {"creator_id": r["id"], "username": names.get(uuid.UUID(r["id"])), **_figures(r)} for r in creators
            ],
            "top_content": _top_content(period, {"top": "gross"}, query["top"])["top"],
        }
    )
