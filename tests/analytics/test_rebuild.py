"""`flask analytics rebuild`: the rollups made again from the ledger and the sessions equal the folded ones."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import delete, select

from streampay.analytics.models import RetentionBucket, Rollup, ViewerBucket, ViewerDays
from streampay.extensions import db
from streampay.streaming.models import Usage
from tests.analytics.conftest import fold_now, serve
from tests.stellar.conftest import XLM

TABLES = (Rollup, ViewerBucket, ViewerDays, RetentionBucket)
PERIOD = {"from": "2027-01-31", "to": "2027-02-01", "tz": "Asia/Kolkata", "granularity": "day"}


def rollups(app) -> dict:
    with app.app_context():
        found = {m.__tablename__: sorted(tuple(r) for r in db.session.execute(select(*m.__table__.c))) for m in TABLES}
        db.session.remove()
    return found


def rebuild(platform, *args: str) -> dict:
    result = platform.runner.invoke(args=["analytics", "rebuild", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_a_rebuild_from_the_ledger_equals_the_fold_and_restores_lost_history(app, platform, clock):
    p = platform
    creator = p.creator()
    film, song = p.item(creator, "0.0100000", "Film"), p.item(creator, "0.0123457", "Song")
    ann, ben = p.viewer(40 * XLM), p.viewer(40 * XLM)
    p.scan_deposits()
    with serve(app) as url:
        p.watch(url, ann, film, 150)  # across Tokyo's midnight, 31 January
        p.watch(url, ben, song, 47.5)
        clock.advance(9 * 3600)  # 00:xx UTC on 1 February: a new month
        p.watch(url, ann, song, 100)
        p.watch(url, ben, film, 61.25)
    fold_now(app)
    folded = rollups(app)
    assert folded["analytics_rollups"] and folded["analytics_viewer_days"] and folded["analytics_retention"]
    before = p.get(creator, "/analytics/creator", **PERIOD).json

    done = rebuild(p)
    assert done["from"] is None and done["usage_rows"] == done["folded"] > 0
    assert rollups(app) == folded
    partial = rebuild(p, "--from", "2027-02-14")  # from the start of its UTC month
    assert partial["from"] == "2027-02-01" and 0 < partial["usage_rows"] < done["usage_rows"]
    assert rollups(app) == folded

    # History from before the outbox: no usage rows were ever written, the rollups know nothing.
    with app.app_context():
        for model in (*TABLES, Usage):
            db.session.execute(delete(model))
        db.session.commit()
        db.session.remove()
    assert p.get(creator, "/analytics/creator", **PERIOD).json["totals"]["gross"] == "0.0000000"
    rebuild(p)
    rebuild(p)  # twice: the same
    assert rollups(app) == folded
    assert p.get(creator, "/analytics/creator", **PERIOD).json == before


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31", "1969-12-31", "not-a-day"])
def test_a_rebuild_from_a_day_out_of_range_is_a_usage_error(platform, day):
    result = platform.runner.invoke(args=["analytics", "rebuild", "--from", day])
    assert result.exit_code == 2, result.output
    assert "--from" in result.output and "Traceback" not in result.output, result.output
