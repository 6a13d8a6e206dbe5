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


# --- what a listing returns: the same items in the same order, whatever the database or its indexes -------------


@pytest.fixture
def racks(app, client, media_files):
    """Ten ready items by two creators, with ties on price, duration and title, and a hidden one of each kind."""
    first = register(client, role="creator", display_name="First Light")
    second = register(client, role="creator")
    video, audio = media_files["video"], media_files["audio"]
    rows = [  # (creator, file, title, description, category, price)
        (first, video, "alpha", "Boats at dawn", "travel", "0.0020000"),
        (first, video, "alpha", "More boats", "travel", "0.0020000"),
        (second, audio, "alpha", "A tone", "music", "0.0010000"),
        (second, audio, "bravo", "Ba ba ba", "music", "0.0020000"),
        (first, video, "charlie 100% juice", "no sugar", "food", "0.0030000"),
        (second, video, "delta_wave", "under the sea", "music", "0.0010000"),
        (first, audio, "echo back\\slash", "a path like C:\\media", "music", "0.0030000"),
        (second, video, "foxtrot deltaxwave", "the underscore is literal", "travel", "0.0020000"),
        (first, audio, "golf 10 percent", "100 juice", "food", "0.0010000"),
        (second, video, "hotel", "Ünïcode and ABC", "travel", "0.0040000"),
    ]
    for who, path, title, description, category, price in rows:
        reply = upload(
            client, who, path, title=title, description=description, category=category, price_per_second=price
        )
        assert reply.status_code == 201, reply.json
    upload(client, first, video, title="alpha unpublished", is_published="false")
    deleted = upload(client, second, video, title="alpha deleted").json
    run_jobs(app)
    assert client.delete(f"/api/v1/content/{deleted['id']}", headers=bearer(second["access_token"])).status_code == 204
    upload(client, first, video, title="alpha processing")  # no job run: it stays processing
    return {"first": first, "second": second}


def walk(client, headers=None, page_size=3, **params) -> list[dict]:
    """Every page of a listing in turn, checking X-Pagination's total on each."""
    items, page = [], 1
    while True:
        reply = client.get(
            "/api/v1/content/", query_string={**params, "page": page, "page_size": page_size}, headers=headers
        )
        assert reply.status_code == 200, reply.json
        meta = json.loads(reply.headers["X-Pagination"])
        items += reply.json
        if not reply.json:
            assert meta["total"] == len(items)
            return items
        page += 1


REFERENCE_ORDER = {  # what each sort promises, as Python sorts (stable: the last key sorted first)
    "newest": [("id", False), ("created_at", True)],
    "oldest": [("id", False), ("created_at", False)],
    "price": [("id", False), ("created_at", True), ("price", False)],
    "-price": [("id", False), ("created_at", True), ("price", True)],
    "duration": [("id", False), ("created_at", True), ("duration_ms", False)],
    "-duration": [("id", False), ("created_at", True), ("duration_ms", True)],
    "title": [("id", False), ("title", False)],
}


def reference(items: list[dict], sort: str) -> list[str]:
    from streampay import money

    keys = {"price": lambda i: money.parse(i["price_per_second"])}
    ordered = list(items)
    for key, descending in REFERENCE_ORDER[sort]:
        ordered.sort(key=keys.get(key, lambda i, key=key: i[key]), reverse=descending)
    return [i["id"] for i in ordered]


def test_every_sort_walks_the_visible_items_in_its_promised_order(client, racks):
    everything = walk(client, sort="newest")
    assert len(everything) == 10 and not any(i["title"].startswith("alpha ") for i in everything)
    for sort in REFERENCE_ORDER:
        assert [i["id"] for i in walk(client, sort=sort)] == reference(everything, sort), sort
        music = [i for i in everything if i["category"] == "music"]
        assert [i["id"] for i in walk(client, sort=sort, category="music")] == reference(music, sort), sort


@pytest.mark.parametrize(
    "term",
    [
        "a",
        "A",
        "ba",
        "BA",
        "al",
        "alpha",
        "juice",
        "%",
        "0%",
        "10%",
        "_",
        "a_w",
        "\\",
        "k\\s",
        "C:\\m",
        "Ünï",  # SQLite folds the case of ASCII letters alone, so other cases of Ü are for PostgreSQL only
        "abc",
    ],
)
def test_search_matches_what_a_substring_search_would(client, racks, term):
    """1-2 characters (shorter than a trigram), LIKE's metacharacters taken literally, any case."""
    everything = walk(client, sort="title")
    expected = [i["id"] for i in everything if term.lower() in (i["title"] + "\n" + i["description"]).lower()]
    assert [i["id"] for i in walk(client, sort="title", search=term)] == expected
    # the same search through a viewer's token (the other cache) and as a category filter beside it
    viewer = bearer(register(client)["access_token"])
    assert [i["id"] for i in walk(client, headers=viewer, sort="title", search=term)] == expected
    food = [i for i in everything if i["category"] == "food" and i["id"] in expected]
    assert [i["id"] for i in walk(client, sort="title", search=term, category="food")] == [i["id"] for i in food]


def test_a_listed_item_is_exactly_what_reading_it_returns(client, racks):
    """The page is written without marshmallow; every field, its value and the key order match the item's read."""
    for who in (None, racks["first"]):
        headers = bearer(who["access_token"]) if who else None
        listed = walk(client, headers=headers, sort="oldest")
        assert len(listed) == (10 if who is None else 12)  # the creator also sees their unpublished and processing
        for item in listed:
            read = client.get(f"/api/v1/content/{item['id']}", headers=headers)
            assert read.status_code == 200
            assert json.dumps(item) == json.dumps(read.json), item["title"]
    first_light = [i["creator"] for i in listed if i["creator_id"] == racks["first"]["user"]["id"]]
    assert set(first_light) == {"First Light"}
