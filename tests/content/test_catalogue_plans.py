"""On PostgreSQL, every listing the catalogue runs is served by its index (the plans, not the timings)."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import event, text

from streampay.extensions import db
from tests.conftest import bearer, truncate_everything
from tests.content.test_catalogue import shelf  # noqa: F401 (the fixture)

pytestmark = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql")), reason="PostgreSQL plans"
)


@pytest.fixture(params=["held", "database"])
def app(request, app_factory, media_root, migrated):
    """Anonymous pages as a web process serves them (its listings held), and read from the database page by page
    (what a listing too long to hold, and a creator's or an admin's own view, always is)."""
    truncate_everything(migrated)  # plans are priced on the tables' pages: start from new ones, not dead rows
    return app_factory(MEDIA_ROOT=media_root, **({"CATALOGUE_INDEX_IDS": 0} if request.param == "database" else {}))


# No plan without the index may win: a scan of the whole table or an explicit sort costs "infinitely" much.
NO_SHORTCUTS = ("enable_seqscan", "enable_sort", "enable_incremental_sort")


def plans_of(app, client, url: str, *, off=NO_SHORTCUTS, headers=None) -> list[str]:
    """The plans of the statements that a GET of `url` ran, explained with `off` planner methods disabled."""
    seen = []
    with app.app_context():
        engine = db.engine

        def remember(conn, cursor, statement, parameters, context, executemany):
            if statement.lstrip().upper().startswith("SELECT") and " content" in statement:
                seen.append((statement, parameters))

        event.listen(engine, "before_cursor_execute", remember)
        try:
            assert client.get(url, headers=headers).status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", remember)
        plans = []
        with engine.connect() as conn:
            for setting in off:
                conn.execute(text(f"SET {setting} = off"))
            for statement, parameters in seen:
                cursor = conn.connection.cursor()
                cursor.execute("EXPLAIN " + statement, parameters)
                plans.append("\n".join(row[0] for row in cursor.fetchall()))
            conn.rollback()
        return plans


@pytest.mark.parametrize("sort", ["newest", "oldest", "price", "-price", "duration", "-duration", "title"])
@pytest.mark.parametrize("category", [None, "music"])
def test_a_page_in_every_sort_walks_its_own_index(app, client, shelf, sort, category):  # noqa: F811
    """Read from the database, a page walks its sort's index to its offset; held, the listing's whole order is read
    from the same index once, and a page's rows by their ids."""
    url = f"/api/v1/content/?sort={sort}&page=1&page_size=2" + (f"&category={category}" if category else "")
    name = sort.removeprefix("-") + ("_desc" if sort.startswith("-") else "")
    index = f"ix_content_visible_{'category_' if category else ''}{name} "
    if app.config["CATALOGUE_INDEX_IDS"]:
        order, rows = plans_of(app, client, url)
        assert f"Index Only Scan using {index}" in order, order
        assert "pk_content" in rows, rows
        for rows in plans_of(app, client, url.replace("page=1", "page=2")):  # a slice of the same order: its rows
            assert "pk_content" in rows and index not in rows, rows
        assert plans_of(app, client, url) == []  # and a page seen before is read from memory alone
    else:
        count, page = plans_of(app, client, url)
        assert f"using {index}" in page, page


def test_a_search_can_read_the_trigram_indexes(app, client, shelf, make_admin):  # noqa: F811
    """An admin's search: no partial index covers it, so with bitmaps alone left only pg_trgm's can find '%harbour%'.
    (Which plan a public search takes is the planner's choice by the table's statistics: see docs/performance.md.)"""
    off = ("enable_seqscan", "enable_indexscan", "enable_indexonlyscan")
    admin = bearer(make_admin()["access_token"])
    count, page = plans_of(app, client, "/api/v1/content/?search=harbour", off=off, headers=admin)
    for plan in (count, page):
        assert "ix_content_title_trgm" in plan and "ix_content_description_trgm" in plan, plan


@pytest.mark.parametrize("app", ["database"], indirect=True)
@pytest.mark.parametrize("sort", ["newest", "price", "title"])
def test_the_page_plans_benchmark_times_the_apps_own_page_statement(app, client, shelf, sort):  # noqa: F811
    """bench/page_plans.py times the statement an anonymous page runs: the same SQL, byte for byte."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from page_plans import page_statement

    seen = []
    with app.app_context():
        engine = db.engine

        def remember(conn, cursor, statement, parameters, context, executemany):
            if " IN (SELECT" in statement:
                seen.append(cursor.mogrify(statement, parameters).decode())

        event.listen(engine, "before_cursor_execute", remember)
        try:
            assert client.get(f"/api/v1/content/?sort={sort}&page=2&page_size=2").status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", remember)
        assert seen == [page_statement(sort).replace("$1", "2").replace("$2", "2")]
