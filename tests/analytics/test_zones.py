"""Days of 23 and 25 hours and zones off the hour: every series point still equals the ledger to the stroop."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from tests.analytics.conftest import fold_now, serve
from tests.analytics.test_reconcile import amounts, bounds, expected, ledger_charges
from tests.stellar.conftest import XLM

# Two minutes before local midnights and clock changes of 2027: Berlin's (28 March, 31 October, 01:00 UTC) and
# St John's (14 March 05:30 UTC, 7 November 04:30 UTC), and the midnights around them.
MOMENTS = [
    datetime(2027, 3, d, h, m, tzinfo=UTC)
    for d, h, m in ((14, 3, 28), (14, 5, 28), (15, 2, 28), (27, 22, 58), (28, 0, 58), (28, 21, 58))
] + [
    datetime(2027, 10, 31, 0, 58, tzinfo=UTC),
    datetime(2027, 10, 31, 22, 58, tzinfo=UTC),
    datetime(2027, 11, 7, 4, 28, tzinfo=UTC),
]
ZONES = ("Europe/Berlin", "America/St_Johns", "Asia/Kathmandu", "Pacific/Kiritimati", "Pacific/Pago_Pago")


def test_series_over_clock_changes_equal_the_ledger(app, platform, clock):
    p = platform
    creator = p.creator()
    film = p.item(creator, "0.0123457", "Film")
    ann, ben = p.viewer(60 * XLM), p.viewer(60 * XLM)
    p.scan_deposits()
    with serve(app) as url:
        for moment in MOMENTS:
            clock.now = int(moment.timestamp()) * 1000
            p.watch(url, ann, film, 130)  # across the midnight or the change
            clock.now = int(moment.timestamp()) * 1000 + 60_000
            p.watch(url, ben, film, 95)
    fold_now(app)
    charges = ledger_charges(app)
    cid = creator["user"]["id"]
    admin = p.admin()
    for tz in ZONES:
        zone = ZoneInfo(tz)
        for first, last in ((date(2027, 3, 12), date(2027, 3, 29)), (date(2027, 3, 1), date(2027, 11, 30))):
            for granularity in ("day", "week", "month"):
                query = {"from": first.isoformat(), "to": last.isoformat(), "tz": tz, "granularity": granularity}
                start = datetime(first.year, first.month, first.day, tzinfo=zone)
                end = datetime(last.year, last.month, last.day, tzinfo=zone) + timedelta(days=1)
                for body, match in (
                    (p.get(creator, "/analytics/creator", **query).json, {"creator": cid}),
                    (p.get(creator, f"/analytics/content/{film['id']}", **query).json, {"content": film["id"]}),
                    (p.get(admin, "/analytics/platform", **query).json, {}),
                ):
                    assert amounts(body["totals"]) == expected(charges, start, end, **match), query
                    assert body["totals"]["unique_viewers"] == 2, query
                    for point, (s, e) in zip(body["series"], bounds(body["series"], body["period"]), strict=True):
                        assert amounts(point) == expected(charges, s, e, **match), (query, point)
