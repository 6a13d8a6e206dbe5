"""The catalogue's listings a web process holds (streampay/content/listings.py): the same pages as the database's,
as fresh as Redis's page cache, across processes, and within their memory bound."""

from __future__ import annotations

import json
import os
import uuid

import pytest

from streampay.extensions import redis_client
from streampay.metrics import CATALOGUE_PAGES
from tests.conftest import bearer
from tests.content.test_catalogue import racks  # noqa: F401 (the fixture)

SORTS = ["newest", "oldest", "price", "-price", "duration", "-duration", "title"]
# Terms shorter than a trigram, LIKE's metacharacters, a term in most items, one in none.
TERMS = ["a", "al", "alpha", "%", "0%", "_", "\\", "juice", "the", "zz"]


def another_process(app_factory, app, **settings):
    """A second web process of the same platform: its own app (and its own listings), the same database and Redis."""
    other = app_factory(MEDIA_ROOT=app.config["MEDIA_ROOT"], **settings)
    with app.app_context():
        shared = redis_client()
    other.extensions["streampay.redis"] = shared  # the embedded default gives each app a Redis of its own
    return other


def served(client, url: str) -> tuple[int, bytes, str | None]:
    reply = client.get(url)
    return reply.status_code, reply.data, reply.headers.get("X-Pagination")


def read_from(source: str) -> float:
    return CATALOGUE_PAGES.labels(source)._value.get()


def test_a_held_page_is_the_databases_page_byte_for_byte(app, client, app_factory, racks):  # noqa: F811
    """Every sort, with a category, a creator, search terms and both together, at page sizes that split ties and
    past the end: the held listing and a process that reads every page from the database answer the same bytes."""
    from_database = another_process(app_factory, app, CATALOGUE_INDEX_IDS=0).test_client()
    creator = racks["first"]["user"]["id"]
    queries = [""] + [f"search={term}" for term in TERMS]
    queries += ["category=music", f"creator_id={creator}", "category=travel&search=a", f"creator_id={creator}&search=o"]
    urls = [
        f"/api/v1/content/?sort={sort}&{query}&page={page}&page_size={size}"
        for sort in SORTS
        for query in queries
        for size, page in ((1, 1), (3, 2), (3, 4), (100, 1), (4, 9))
    ]
    held_before, database_before = read_from("held"), read_from("database")
    answers = [served(client, url) for url in urls]  # first, so none is answered from a page the other cached
    assert read_from("held") - held_before == len(urls)
    for url, held in zip(urls, answers, strict=True):
        assert held[0] == 200, url
        assert served(from_database, url) == held, url
    assert read_from("database") - database_before == len(urls)
    assert any(json.loads(body) for _, body, _ in answers) and any(not json.loads(body) for _, body, _ in answers)


def test_a_change_through_one_process_shows_in_the_others_listings_at_once(app, client, app_factory, racks):  # noqa: F811
    other = another_process(app_factory, app).test_client()
    first = racks["first"]
    url = "/api/v1/content/?sort=-price&search=alpha&page_size=2"
    before = other.get(url).json
    assert [i["title"] for i in before] == ["alpha", "alpha"] and other.get(url).json == before  # now held
    headers = bearer(first["access_token"])
    mine = before[1]
    assert mine["creator_id"] == first["user"]["id"]
    reply = client.patch(f"/api/v1/content/{mine['id']}", json={"price_per_second": "0.0090000"}, headers=headers)
    assert reply.status_code == 200, reply.json
    after = other.get(url).json
    assert after[0]["id"] == mine["id"] and after[0]["price_per_second"] == "0.0090000"
    assert client.delete(f"/api/v1/content/{mine['id']}", headers=headers).status_code == 204
    assert mine["id"] not in [i["id"] for i in other.get("/api/v1/content/?search=alpha&page_size=100").json]
    total = json.loads(other.get("/api/v1/content/?search=alpha").headers["X-Pagination"])["total"]
    assert total == 2


def changes_of_every_kind(client, shelves):
    """(what, do it): a title, a price, a category, unpublished, published, deleted, a creator renamed; and two,
    the first of which Redis lost its record of."""
    first = shelves["first"]
    mine = {who: bearer(shelves[who]["access_token"]) for who in ("first", "second")}
    shelf = client.get("/api/v1/content/?sort=title&page_size=100", headers=mine["first"]).json
    shelf += client.get("/api/v1/content/?sort=title&page_size=100", headers=mine["second"]).json
    by_title = {item["title"]: item for item in shelf}

    def edit(old_title, **changes):
        item = by_title[old_title]
        who = "first" if item["creator_id"] == first["user"]["id"] else "second"
        return lambda: client.patch(f"/api/v1/content/{item['id']}", json=changes, headers=mine[who])

    def forget_a_change():  # one change, its record lost (Redis wiped it, or let it go), then another
        assert edit("hotel", title="india juice")().status_code == 200
        with client.application.app_context():
            redis_client().delete("content:catalogue:changes")
        return edit("bravo", title="kilo")()

    deleted = by_title["delta_wave"]["id"]
    rename = lambda: client.patch("/api/v1/users/me", json={"display_name": "Dusk"}, headers=mine["first"])  # noqa: E731
    return [
        ("a title", edit("golf 10 percent", title="alpha zulu")),
        ("a price", edit("bravo", price_per_second="0.0005000")),
        ("a category", edit("charlie 100% juice", category="music")),
        ("unpublished", edit("foxtrot deltaxwave", is_published=False)),
        ("published", edit("alpha unpublished", is_published=True)),
        ("deleted", lambda: client.delete(f"/api/v1/content/{deleted}", headers=mine["second"])),
        ("a creator renamed", rename),
        ("a change whose record was lost", forget_a_change),
    ]


def titles(body: bytes) -> list[str]:
    return [item["title"] for item in json.loads(body)]


def test_a_held_listing_follows_every_kind_of_change(app, client, app_factory, racks):  # noqa: F811
    """What a process holds is moved on by each change (the changed items' JSON read again, the terms' matches
    corrected, the orders read again), and its pages stay the database's pages, byte for byte."""
    held = another_process(app_factory, app).test_client()
    from_database = another_process(app_factory, app, CATALOGUE_INDEX_IDS=0).test_client()
    queries = ["", "category=music", "category=food", f"creator_id={racks['first']['user']['id']}"]
    queries += [f"search={term}" for term in ("alpha", "juice", "zulu", "a", "dusk", "india", "kilo")]
    queries += ["category=music&search=a"]
    urls = [
        f"/api/v1/content/?sort={sort}&{query}&page_size=4&page={page}"
        for sort in SORTS
        for query in queries
        for page in (1, 2)
    ]
    for url in urls:
        held.get(url)  # now held
    for what, change in changes_of_every_kind(client, racks):
        assert change().status_code in (200, 204), what
        held_before = read_from("held")
        answers = [served(held, url) for url in urls]
        assert read_from("held") - held_before == len(urls), what
        for url, answer in zip(urls, answers, strict=True):
            expected = served(from_database, url)
            assert answer == expected, (what, url, titles(answer[1]), titles(expected[1]))
    names = {item["creator"] for item in json.loads(served(held, "/api/v1/content/?page_size=100")[1])}
    assert "Dusk" in names and "First Light" not in names


def test_a_change_reads_again_only_what_it_changed(app, client, app_factory, racks):  # noqa: F811
    """One item's new title: the process reads that item's row and the orders of the listings it is in again,
    and asks which terms the item matches now in one statement, rather than reading every term's matches, every
    listing and every item."""
    from sqlalchemy import event

    from streampay.extensions import db

    other_app = another_process(app_factory, app)
    held = other_app.test_client()
    urls = [f"/api/v1/content/?sort={sort}&search={term}" for sort in ("title", "price") for term in TERMS]
    urls += [f"/api/v1/content/?sort={sort}&page_size=100{more}" for sort in SORTS for more in ("", "&category=music")]
    for url in urls:
        held.get(url)
    first = racks["first"]
    alphas = held.get("/api/v1/content/?sort=title&search=alpha").json
    mine = next(i for i in alphas if i["creator_id"] == first["user"]["id"])
    reply = client.patch(f"/api/v1/content/{mine['id']}", json={"title": "zulu"}, headers=bearer(first["access_token"]))
    assert reply.status_code == 200
    reads = []

    def remember(conn, cursor, statement, parameters, context, executemany):
        reads.append((statement, parameters))

    with other_app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", remember)
    try:
        answers = [held.get(url) for url in urls]
    finally:
        event.remove(engine, "before_cursor_execute", remember)
    assert all(a.status_code == 200 for a in answers)
    assert "zulu" in [i["title"] for i in held.get("/api/v1/content/?search=zulu").json]
    likes = [s for s, _ in reads if "LIKE" in s.upper()]
    assert len(likes) == 1, likes  # the terms asked of the changed item: one statement, not one per term
    rows = [p for s, p in reads if "JOIN users" in s]
    assert len(rows) == 1 and len(rows[0]) == 1, rows  # the changed item's row alone
    # The whole catalogue's orders, in every sort; not music's, which the item (in travel) was never in.
    assert len([s for s, _ in reads if "ORDER BY" in s]) == len(SORTS)


def test_a_terms_matches_read_by_one_process_serve_the_others(app, client, app_factory, racks):  # noqa: F811
    """A search term's matches are read from the database once for all the processes: another process takes them
    from Redis, brought up to its generation by asking the database about the items changed since."""
    from sqlalchemy import event

    from streampay.extensions import db

    one = another_process(app_factory, app).test_client()
    other_app = another_process(app_factory, app)
    from_database = another_process(app_factory, app, CATALOGUE_INDEX_IDS=0).test_client()
    url = "/api/v1/content/?sort=title&search=alpha"
    assert one.get(url).status_code == 200  # reads the matches of "alpha" and their items
    first = racks["first"]
    mine = next(i for i in one.get(url).json if i["creator_id"] == first["user"]["id"])
    reply = client.patch(f"/api/v1/content/{mine['id']}", json={"title": "zulu"}, headers=bearer(first["access_token"]))
    assert reply.status_code == 200
    reads = []

    def remember(conn, cursor, statement, parameters, *rest):
        reads.append((statement, parameters))

    with other_app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", remember)
    try:
        answers = [served(other_app.test_client(), u) for u in (url, "/api/v1/content/?sort=title&search=zulu")]
    finally:
        event.remove(engine, "before_cursor_execute", remember)
    assert answers[0] == served(from_database, url) and "zulu" not in answers[0][1].decode()
    assert titles(answers[1][1]) == ["zulu"]
    likes = [s for s, _ in reads if "LIKE" in s.upper()]
    assert len(likes) == 2 and "count(*)" not in likes[0], likes  # the changed item asked about; then "zulu"


def test_a_request_that_read_the_generation_before_a_change_keeps_what_is_held(app, client, racks):  # noqa: F811
    """A request that read the generation just before a change, and reaches the listings after another request
    moved them on, is served what is held (fresher than it asked for): it does not move them back, which would
    drop them."""
    from sqlalchemy import event

    from streampay.extensions import db

    url = "/api/v1/content/?sort=title&search=alpha&page_size=100"
    first = racks["first"]
    mine = next(i for i in client.get(url).json if i["creator_id"] == first["user"]["id"])
    reply = client.patch(
        f"/api/v1/content/{mine['id']}", json={"title": "alpha two"}, headers=bearer(first["access_token"])
    )
    assert reply.status_code == 200
    moved_on = client.get(url).json  # a request of the new generation moves what is held on to it
    with app.app_context():
        cache = redis_client()
        newer = cache.get("content:catalogue:generation")
        cache.set("content:catalogue:generation", int(newer) - 1)  # what the late request read
        engine = db.engine
    reads = []

    def remember(conn, cursor, statement, *rest):
        reads.append(statement)

    event.listen(engine, "before_cursor_execute", remember)
    try:
        late = client.get(url).json
    finally:
        event.remove(engine, "before_cursor_execute", remember)
        with app.app_context():
            redis_client().set("content:catalogue:generation", newer)
    assert late == moved_on and "alpha two" in [i["title"] for i in late]
    assert reads == []  # nothing dropped, nothing read again
    held_before = read_from("held")
    assert client.get(url).json == moved_on and read_from("held") - held_before == 1


def test_after_redis_lost_the_generation_one_drawn_from_a_clock_behind_is_still_new(app, client, racks):  # noqa: F811
    """Redis emptied, and the next generation drawn by a process whose clock is a second behind: smaller than the
    one held, yet no request's of before the wipe: what is held is dropped, not served."""
    url = "/api/v1/content/?sort=title&page_size=100"
    client.get(url)
    first = racks["first"]
    mine = next(i for i in client.get(url).json if i["creator_id"] == first["user"]["id"])
    headers = bearer(first["access_token"])
    assert client.patch(f"/api/v1/content/{mine['id']}", json={"title": "yankee"}, headers=headers).status_code == 200
    assert "yankee" in [i["title"] for i in client.get(url).json]  # held under the change's generation
    with app.app_context():
        cache = redis_client()
        held = int(cache.get("content:catalogue:generation"))
        cache.flushdb()
        cache.set("content:catalogue:generation", held - 1_000_000)  # another process's clock, a second behind
    assert client.patch(f"/api/v1/content/{mine['id']}", json={"title": "zulu"}, headers=headers).status_code == 200
    assert [i["title"] for i in client.get(url).json][-1] == "zulu"


def test_a_change_whose_notice_never_reached_redis_is_served_after_a_recheck(app, app_factory, racks):  # noqa: F811
    """A change committed while Redis was down moves no generation: each process finds it by asking the database
    which items changed lately, every CATALOGUE_RECHECK_SECONDS, and then serves it."""
    import time

    from streampay.content.models import Content
    from streampay.extensions import db

    held = another_process(app_factory, app, CATALOGUE_RECHECK_SECONDS=1).test_client()
    from_database = another_process(app_factory, app, CATALOGUE_INDEX_IDS=0).test_client()
    urls = [f"/api/v1/content/?sort={sort}&{query}" for sort in ("title", "price") for query in ("", "search=lima")]
    before = [served(held, url) for url in urls]
    first = racks["first"]
    mine = next(i for i in json.loads(before[0][1]) if i["creator_id"] == first["user"]["id"])
    with app.app_context():  # committed, and then Redis was not there to hear of it
        db.session.get(Content, uuid.UUID(mine["id"])).title = "lima"
        db.session.commit()
    time.sleep(1.1)
    for url in urls:
        assert served(held, url) == served(from_database, url), url
    assert "lima" in [i["title"] for i in held.get("/api/v1/content/?search=lima").json]


def test_what_a_process_held_is_not_served_after_redis_loses_the_generation(app, client, racks):  # noqa: F811
    """Redis restarted empty: the next change gets a generation no process held anything under."""
    url = "/api/v1/content/?sort=title&page_size=100"
    titles = [i["title"] for i in client.get(url).json]
    assert client.get(url).json and "zulu" not in titles
    with app.app_context():
        redis_client().flushdb()
    first = racks["first"]
    item = next(i for i in client.get(url).json if i["creator_id"] == first["user"]["id"])
    reply = client.patch(f"/api/v1/content/{item['id']}", json={"title": "zulu"}, headers=bearer(first["access_token"]))
    assert reply.status_code == 200
    assert [i["title"] for i in client.get(url).json][-1] == "zulu"


@pytest.mark.parametrize("budget", [0, 20, 100])
def test_a_listing_longer_than_a_process_holds_is_read_from_the_database(app_factory, app, racks, budget):  # noqa: F811
    """A tenth of CATALOGUE_INDEX_IDS is the longest listing held (0: none): 10 items do not fit under 20 or 0,
    and do under 100; the longer ones are read page by page from the database, with the same answers."""
    small = another_process(app_factory, app, CATALOGUE_INDEX_IDS=budget).test_client()
    url = "/api/v1/content/?sort=price&page=2&page_size=3"
    expected = served(app.test_client(), url)  # held under the default bound (and so not cached in Redis)
    held_before, database_before = read_from("held"), read_from("database")
    assert served(small, url) == expected
    assert read_from("held") - held_before == (1 if budget == 100 else 0)
    assert read_from("database") - database_before == (0 if budget == 100 else 1)
    assert len(json.loads(expected[1])) == 3


@pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql")),
    reason="requests on threads of their own, each with a connection of its own: PostgreSQL",
)
def test_a_listing_asked_for_by_many_at_once_is_read_once(app, client, racks):  # noqa: F811
    """An emptied cache under load is a queue, not a stampede: the first request reads the listing's order and
    the term's matches, and the others asking at the same moment wait for it."""
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import event

    from streampay.extensions import db

    with app.app_context():
        redis_client().flushdb()  # a generation nobody holds anything under
    client.get("/api/v1/content/?sort=oldest&page_size=1")  # draws the new generation
    reads = []

    def remember(conn, cursor, statement, parameters, context, executemany):
        if "FROM content" in statement:
            reads.append(statement)

    urls = [f"/api/v1/content/?sort=title&search=a&page={page}&page_size=1" for page in range(1, 9)] * 2
    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", remember)
    try:
        with ThreadPoolExecutor(max_workers=len(urls)) as pool:
            replies = list(pool.map(lambda url: app.test_client().get(url), urls))
    finally:
        event.remove(engine, "before_cursor_execute", remember)
    assert all(r.status_code == 200 for r in replies)
    assert [r.json[0]["id"] for r in replies[:8]] == [r.json[0]["id"] for r in replies[8:]]
    orders = [s for s in reads if "ORDER BY" in s]
    matches = [s for s in reads if "LIKE" in s.upper() and "count(*)" in s]
    assert len(orders) == 1 and len(matches) == 1, reads  # the title order, and the matches of "a" (then rows)
