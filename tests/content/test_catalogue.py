from __future__ import annotations

import json

import pytest

from tests.conftest import bearer, register
from tests.content.conftest import ready_item, run_jobs, upload


@pytest.fixture
def shelf(app, client, creator, media_files):
    """Three ready items, one still processing, one failed, all by one creator."""
    video = media_files["video"]
    items = {
        "harbour": ready_item(
            app,
            client,
            creator,
            video,
            title="Harbour at Dawn",
            category="travel",
            description="Boats leave at sunrise",
            price_per_second="0.0030000",
        ),
        "grill": ready_item(
            app, client, creator, video, title="Grill 100% vegetables", category="food", price_per_second="0.0010000"
        ),
        "tone": ready_item(
            app,
            client,
            creator,
            media_files["audio"],
            title="under_score tone",
            category="music",
            description="It's calm",
            price_per_second="0.0020000",
        ),
    }
    items["failed"] = upload(client, creator, media_files["truncated"], title="Broken harbour").json
    run_jobs(app)
    items["processing"] = upload(client, creator, video, title="Harbour draft").json
    return items


def titles(reply) -> list[str]:
    assert reply.status_code == 200, reply.json
    return [item["title"] for item in reply.json]


def test_viewers_see_only_ready_published_content(client, shelf):
    viewer = register(client)
    for who in ({}, bearer(viewer["access_token"])):
        assert sorted(titles(client.get("/api/v1/content/", headers=who))) == sorted(
            ["Harbour at Dawn", "Grill 100% vegetables", "under_score tone"]
        )
        assert client.get(f"/api/v1/content/{shelf['processing']['id']}", headers=who).status_code == 404


def test_a_creator_also_sees_their_own_processing_and_failed_items(client, creator, shelf):
    mine = titles(client.get("/api/v1/content/?search=harbour", headers=bearer(creator["access_token"])))
    assert sorted(mine) == ["Broken harbour", "Harbour at Dawn", "Harbour draft"]
    other = register(client, role="creator")
    assert titles(client.get("/api/v1/content/?search=harbour", headers=bearer(other["access_token"]))) == [
        "Harbour at Dawn"
    ]
    failed = client.get(f"/api/v1/content/{shelf['failed']['id']}", headers=bearer(creator["access_token"])).json
    assert failed["status"] == "failed" and failed["failure_reason"]


def test_search_is_case_insensitive_on_title_and_description(client, shelf):
    assert titles(client.get("/api/v1/content/?search=HARBOUR")) == ["Harbour at Dawn"]
    assert titles(client.get("/api/v1/content/?search=sunrise")) == ["Harbour at Dawn"]


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("%", ["Grill 100% vegetables"]),
        ("_", ["under_score tone"]),
        ("'", ["under_score tone"]),
        ("0%", ["Grill 100% vegetables"]),
        ("' OR 1=1 --", []),
        ("\\", []),
    ],
)
def test_search_takes_like_metacharacters_literally(client, shelf, term, expected):
    assert titles(client.get("/api/v1/content/", query_string={"search": term})) == expected


def test_category_filter_and_sorts(client, shelf):
    assert titles(client.get("/api/v1/content/?category=food")) == ["Grill 100% vegetables"]
    assert titles(client.get("/api/v1/content/?category=nothing-here")) == []
    by_price = titles(client.get("/api/v1/content/?sort=price"))
    assert by_price == ["Grill 100% vegetables", "under_score tone", "Harbour at Dawn"]
    assert titles(client.get("/api/v1/content/?sort=-price")) == list(reversed(by_price))
    assert titles(client.get("/api/v1/content/?sort=duration"))[0] == "under_score tone"
    assert titles(client.get("/api/v1/content/?sort=newest"))[0] == "under_score tone"


def test_pagination_and_its_edges(client, shelf):
    reply = client.get("/api/v1/content/?page=1&page_size=2")
    assert len(reply.json) == 2
    meta = json.loads(reply.headers["X-Pagination"])
    assert meta["total"] == 3 and meta["total_pages"] == 2 and meta["next_page"] == 2
    assert len(client.get("/api/v1/content/?page=2&page_size=2").json) == 1
    assert client.get("/api/v1/content/?page=9").json == []
    for bad in ("page=0", "page_size=0", "page_size=10000", "page=-1", "page=x", "sort=random", "category=Bad Cat"):
        reply = client.get(f"/api/v1/content/?{bad}")
        assert reply.status_code == 422, bad
        assert reply.json["code"] == 422


def test_catalogue_pages_follow_changes(client, creator, shelf):
    assert "Harbour at Dawn" in titles(client.get("/api/v1/content/"))
    headers = bearer(creator["access_token"])
    reply = client.patch(
        f"/api/v1/content/{shelf['harbour']['id']}", json={"title": "Harbour at Dusk"}, headers=headers
    )
    assert reply.status_code == 200
    assert "Harbour at Dusk" in titles(client.get("/api/v1/content/"))
    client.patch(f"/api/v1/content/{shelf['harbour']['id']}", json={"is_published": False}, headers=headers)
    assert "Harbour at Dusk" not in titles(client.get("/api/v1/content/"))


def test_an_item_read_is_cached_and_refreshed_on_change(app, client, creator, shelf):
    from streampay.extensions import redis_client

    url = f"/api/v1/content/{shelf['grill']['id']}"
    assert client.get(url).json["price_per_second"] == "0.0010000"
    with app.app_context():
        key = f"content:item:{shelf['grill']['id']}"
        assert 0 < redis_client().ttl(key) <= 300
    reply = client.patch(
        url, json={"price_per_second": "0.0040000", "tags": ["bbq"]}, headers=bearer(creator["access_token"])
    )
    assert reply.status_code == 200
    fresh = client.get(url).json
    assert fresh["price_per_second"] == "0.0040000" and fresh["tags"] == ["bbq"]
    assert client.delete(url, headers=bearer(creator["access_token"])).status_code == 204
    assert client.get(url).status_code == 404
    assert "Grill 100% vegetables" not in titles(client.get("/api/v1/content/"))
