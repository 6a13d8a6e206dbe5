"""Every analytics figure equals the ledger entries it describes, to the stroop, in any zone and period."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from streampay import money
from streampay.extensions import db
from streampay.ledger.models import AccountKind, Transaction
from tests.analytics.conftest import fold_now, serve
from tests.stellar.conftest import XLM

ZONES = ("UTC", "Asia/Tokyo", "Asia/Kolkata")
PERIODS = (
    (date(2027, 1, 31), date(2027, 1, 31)),
    (date(2027, 2, 1), date(2027, 2, 1)),
    (date(2027, 1, 31), date(2027, 2, 1)),
)


def ledger_charges(app) -> list[dict]:
    """Every charge posted, read from the ledger: when, what, whose, and each leg; watch time from its details."""
    out, billed = [], {}
    with app.app_context():
        txns = db.session.scalars(select(Transaction).where(Transaction.kind == "charge").order_by(Transaction.id))
        for txn in txns:
            legs = {e.account.kind: e for e in txn.entries}
            session = txn.details["session_id"]
            watch = txn.details["billed_ms"] - billed.get(session, 0)
            billed[session] = txn.details["billed_ms"]
            out.append(
                {
                    "at": txn.created_at,
                    "content": txn.details["content_id"],
                    "session": session,
                    "creator": str(legs[AccountKind.CREATOR_EARNINGS].account.user_id),
                    "viewer": str(legs[AccountKind.VIEWER_WALLET].account.user_id),
                    "gross": -legs[AccountKind.VIEWER_WALLET].amount,
                    "fee": legs[AccountKind.PLATFORM_FEES].amount if AccountKind.PLATFORM_FEES in legs else 0,
                    "net": legs[AccountKind.CREATOR_EARNINGS].amount,
                    "watch_ms": watch,
                }
            )
        db.session.remove()
    return out


def ledger_sums(app, kind: str, account: AccountKind) -> list[tuple[datetime, int]]:
    with app.app_context():
        rows = [
            (txn.created_at, entry.amount)
            for txn in db.session.scalars(select(Transaction).where(Transaction.kind == kind))
            for entry in txn.entries
            if entry.account.kind is account
        ]
        db.session.remove()
    return rows


def expected(charges: list[dict], start: datetime, end: datetime, **match) -> dict:
    picked = [c for c in charges if start <= c["at"] < end and all(c[k] == v for k, v in match.items())]
    gross, fee, net = (sum(c[k] for c in picked) for k in ("gross", "fee", "net"))
    assert gross == fee + net  # the ledger balances; analytics must too
    watch = sum(c["watch_ms"] for c in picked)
    return {"gross": gross, "fees": fee, "net": net, "watch_ms": watch}


def amounts(figures: dict) -> dict:
    return {
        "gross": money.parse(figures["gross"]),
        "fees": money.parse(figures["fees"]),
        "net": money.parse(figures["net"]),
        "watch_ms": figures["watch_ms"],
    }


def bounds(series: list[dict], period: dict) -> list[tuple[datetime, datetime]]:
    starts = [datetime.fromisoformat(p["start"]) for p in series]
    first = datetime.fromisoformat(period["start"])
    return list(zip([max(s, first) for s in starts], [*starts[1:], datetime.fromisoformat(period["end"])], strict=True))


def test_analytics_equal_the_ledger_in_every_zone_and_period(app, platform, horizon, clock):
    p = platform
    alice = p.creator(payout_address=True)
    bob = p.creator()
    documentary = p.item(alice, "0.0100000", "Documentary")
    concert = p.item(alice, "0.0123457", "Concert")  # an odd price: rounding is cumulative, never lost
    lecture = p.item(bob, "0.0050000", "Lecture")
    ann, ben, cat = p.viewer(50 * XLM), p.viewer(40 * XLM), p.viewer(30 * XLM)
    p.horizon.pay_in(p.funder.public_key, p.custody.public_key, 7 * XLM)  # no memo: unmatched
    scanned = p.scan_deposits()
    assert (scanned["credited"], scanned["unmatched"]) == (3, 1)

    sessions = {}  # id -> (viewer, item, started, ended)

    def watch(url, viewer, item, seconds):
        started = clock.now
        sid = p.watch(url, viewer, item, seconds)
        sessions[sid] = (viewer["user"]["id"], item["id"], started, clock.now)

    with serve(app) as url:
        # 14:58 UTC on Sunday 31 January: Tokyo's midnight (15:00 UTC) falls in these sessions.
        watch(url, ann, documentary, 150)
        watch(url, ben, concert, 47.5)
        clock.advance(3 * 3600 + 25 * 60)  # 18:28 UTC: Kolkata's midnight (18:30 UTC) comes next
        watch(url, ann, concert, 100)
        watch(url, cat, lecture, 61.25)
        clock.now = int(datetime.fromisoformat("2027-01-31T23:58:30+00:00").timestamp()) * 1000
        # UTC's midnight, a new month and a new (Monday) week.
        watch(url, ben, documentary, 130)
        watch(url, cat, documentary, 12)
        watch(url, ann, lecture, 30)

    # Before the fold the rollups know nothing; after it, everything (and a second fold adds nothing).
    who = alice
    early = p.get(who, "/analytics/creator", **{"from": "2027-01-31", "to": "2027-02-01"}).json
    assert early["totals"]["gross"] == "0.0000000"
    fold_now(app)
    fold_now(app)

    # Payouts and deposits happen on the wall clock: alice is paid on-chain.
    run = p.runner.invoke(args=["payouts", "run"])
    assert run.exit_code == 0, run.output
    assert json.loads(run.output)["paid"] == 1

    charges = ledger_charges(app)
    assert len({c["at"].date() for c in charges}) == 2 and len(charges) >= 12
    users = {"alice": alice, "bob": bob}
    owners = {i["id"]: (bob if i is lecture else alice)["user"]["id"] for i in (documentary, concert, lecture)}
    admin = p.admin()
    for tz in ZONES:
        zone = ZoneInfo(tz)
        for first, last in PERIODS:
            for granularity in ("day", "week", "month"):
                query = {"from": first.isoformat(), "to": last.isoformat(), "tz": tz, "granularity": granularity}
                start = datetime(first.year, first.month, first.day, tzinfo=zone)
                end = datetime(last.year, last.month, last.day, tzinfo=zone) + timedelta(days=1)
                in_period = {s: v for s, v in sessions.items() if start <= _ms(v[2]) < end}
                for name, creator in users.items():
                    cid = creator["user"]["id"]
                    body = p.get(creator, "/analytics/creator", **query).json
                    assert body["period"]["start"] == start.isoformat() and body["period"]["end"] == end.isoformat()
                    assert amounts(body["totals"]) == expected(charges, start, end, creator=cid), (name, query)
                    items = {i["id"] for i in (documentary, concert, lecture) if owners[i["id"]] == cid}
                    assert body["totals"]["sessions"] == sum(1 for v in in_period.values() if v[1] in items)
                    assert body["totals"]["unique_viewers"] == len(
                        _viewers(charges, sessions, start, end, lambda c, cid=cid: c["creator"] == cid, items)
                    )
                    assert body["totals"]["paid_out"] == "0.0000000"  # paid on today's wall clock, not in 2027
                    for point, (s, e) in zip(body["series"], bounds(body["series"], body["period"]), strict=True):
                        assert amounts(point) == expected(charges, s, e, creator=cid), (name, query, point)
                    ranked = [t["content_id"] for t in body["top_content"]["by_earnings"]]
                    nets = {i: expected(charges, start, end, content=i)["net"] for i in ranked}
                    assert sorted(nets.values(), reverse=True) == list(nets.values())

                for item in (documentary, concert, lecture):
                    owner = alice if item is not lecture else bob
                    body = p.get(owner, f"/analytics/content/{item['id']}", **query).json
                    assert amounts(body["totals"]) == expected(charges, start, end, content=item["id"]), query
                    for point, (s, e) in zip(body["series"], bounds(body["series"], body["period"]), strict=True):
                        assert amounts(point) == expected(charges, s, e, content=item["id"]), (query, point)
                    ended = [v for v in sessions.values() if v[1] == item["id"] and start <= _ms(v[3]) < end]
                    assert body["retention"]["sessions"] == len(ended)

                body = p.get(admin, "/analytics/platform", **query).json
                assert amounts(body["totals"]) == expected(charges, start, end), query
                assert body["totals"]["sessions"] == len(in_period)
                for point, (s, e) in zip(body["series"], bounds(body["series"], body["period"]), strict=True):
                    assert amounts(point) == expected(charges, s, e), (query, point)

    # Today, on the wall clock: the deposits and the payout, as the ledger has them.
    today = {"tz": "UTC"}
    body = p.get(admin, "/analytics/platform", **today).json
    custody_in = -sum(a for _, a in ledger_sums(app, "deposit", AccountKind.CUSTODY))
    paid = sum(a for _, a in ledger_sums(app, "payout_confirmed", AccountKind.CUSTODY))
    assert money.parse(body["totals"]["deposits"]) == custody_in == 127 * XLM
    assert money.parse(body["totals"]["deposits_unmatched"]) == 7 * XLM
    assert money.parse(body["totals"]["paid_out"]) == paid > 0
    assert money.parse(body["now"]["custody"]) == custody_in - paid
    assert body["now"]["payouts_in_flight"] == "0.0000000" and body["now"]["active_sessions"] == 0
    assert body["totals"]["new_users"] == 6  # alice, bob, three viewers and the admin
    mine = p.get(alice, "/analytics/creator", **today).json
    formed = -sum(a for _, a in ledger_sums(app, "payout_formed", AccountKind.CREATOR_EARNINGS))
    assert money.parse(mine["totals"]["paid_out"]) == formed == paid
    assert p.get(bob, "/analytics/creator", **today).json["totals"]["paid_out"] == "0.0000000"
    check = p.runner.invoke(args=["ledger", "check"])
    assert check.exit_code == 0, check.output


def _ms(ms: int) -> datetime:
    from streampay.clock import as_datetime

    return as_datetime(ms)


def _viewers(charges, sessions, start, end, match, items) -> set[str]:
    """Viewers active in [start, end): a session started or ended, or a charge posted, in it."""
    seen = {c["viewer"] for c in charges if start <= c["at"] < end and match(c)}
    for viewer, item, started, ended in sessions.values():
        if item in items and (start <= _ms(started) < end or start <= _ms(ended) < end):
            seen.add(viewer)
    return seen
