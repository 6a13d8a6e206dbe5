"""Anonymous catalogue pages answered from Redis carry the same X-Pagination as the first answer."""

from __future__ import annotations

import json

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
