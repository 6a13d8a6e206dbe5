"""Anonymous catalogue pages (answered before the view) match what the view answers a viewer, byte for byte."""

from __future__ import annotations

import json

import pytest

from tests.conftest import assert_pool_gives_transactions, autocommit_of, bearer, register
from tests.content.conftest import ready_item


def test_a_cached_anonymous_page_has_the_same_pagination_header(app, client, creator, media_files):
    for title in ("One", "Two", "Three"):
        ready_item(app, client, creator, media_files["audio"], title=title, category="cached")
    first = client.get("/api/v1/content/?category=cached&page_size=2")
    again = client.get("/api/v1/content/?category=cached&page_size=2")
    assert first.status_code == again.status_code == 200
    assert json.loads(again.headers["X-Pagination"]) == json.loads(first.headers["X-Pagination"])
    assert json.loads(first.headers["X-Pagination"])["total"] == 3
    assert again.json == first.json


@pytest.mark.parametrize(
    "query",
    [
        "",
        "page=2&page_size=2",
        "page=9",  # past the end: X-Pagination has no page
        "page=2&page=1&page_size=1",  # a repeated argument: the first one counts
        "sort=title&search=%20t%20&unknown=1",
        "category=listen&sort=-price&page_size=100",
        "page=0",
        "page_size=101",
        "sort=random",
        "search=",
        "category=Bad%20Cat",
        "creator_id=nope",
    ],
)
def test_an_anonymous_reply_is_the_views_reply(app, client, creator, media_files, query):
    for title in ("One", "Two", "Three"):
        ready_item(app, client, creator, media_files["audio"], title=title, category="listen")
    viewer = bearer(register(client)["access_token"])
    url = f"/api/v1/content/?{query}"
    for _ in range(2):  # answered, then answered from the cache
        anonymous, viewed = client.get(url), client.get(url, headers=viewer)
        assert anonymous.status_code == viewed.status_code, anonymous.json
        assert anonymous.data == viewed.data
        assert anonymous.headers.get("X-Pagination") == viewed.headers.get("X-Pagination")
        assert anonymous.headers["Content-Type"] == viewed.headers["Content-Type"]


def test_a_page_read_from_the_database_runs_without_a_transaction_and_hands_its_connection_back(
    app, client, creator, media_files
):
    """On PostgreSQL an anonymous listing reads without a transaction around it (no BEGIN, no ROLLBACK round trip);
    the connection goes back to the pool with transactions on, and a write on it after is a transaction again.
    (A signed-in reader's listing reads in the transaction that loaded the user.)"""
    ready_item(app, client, creator, media_files["audio"], title="Pooled", category="pooled")
    viewer = bearer(register(client)["access_token"])
    with autocommit_of(app, "FROM content") as listings:
        assert client.get("/api/v1/content/?category=pooled&sort=title").status_code == 200
    assert listings and all(listings), listings
    assert client.get("/api/v1/content/?category=pooled&sort=price", headers=viewer).status_code == 200
    assert_pool_gives_transactions(app)
    ready_item(app, client, creator, media_files["audio"], title="Written after", category="pooled")
    assert client.get("/api/v1/content/?category=pooled&sort=title").json[0]["title"] == "Pooled"
