from __future__ import annotations

from tests.conftest import bearer, register
from tests.content.conftest import ready_item


def test_only_the_creator_or_an_admin_may_edit_or_delete(app, client, creator, media_files, make_admin):
    item = ready_item(app, client, creator, media_files["audio"])
    url = f"/api/v1/content/{item['id']}"
    other = register(client, role="creator")
    viewer = register(client)
    for who, status in ((other, 403), (viewer, 403)):
        assert client.patch(url, json={"title": "mine now"}, headers=bearer(who["access_token"])).status_code == status
        assert client.delete(url, headers=bearer(who["access_token"])).status_code == status
    assert client.patch(url, json={"title": "x"}).status_code == 401
    assert client.get(url).json["title"] == item["title"]
    admin = make_admin()
    assert client.patch(url, json={"title": "Moderated"}, headers=bearer(admin["access_token"])).json["title"] == (
        "Moderated"
    )
    assert client.delete(url, headers=bearer(admin["access_token"])).status_code == 204


def test_bad_edits_are_refused(app, client, creator, media_files):
    item = ready_item(app, client, creator, media_files["audio"])
    url = f"/api/v1/content/{item['id']}"
    headers = bearer(creator["access_token"])
    for body in (
        {"price_per_second": "-0.1"},
        {"price_per_second": "0.12345678"},
        {"price_per_second": 0.5},
        {"title": ""},
        {"title": "x" * 201},
        {"tags": ["x" * 31]},
        {"status": "ready"},
        {"category": "UPPER"},
        {"creator_id": creator["user"]["id"]},
    ):
        reply = client.patch(url, json=body, headers=headers)
        assert reply.status_code == 422, body
    assert client.get(url).json["price_per_second"] == item["price_per_second"]


def test_unknown_or_malformed_ids(client, creator):
    headers = bearer(creator["access_token"])
    assert client.get("/api/v1/content/00000000-0000-0000-0000-000000000000").status_code == 404
    assert client.get("/api/v1/content/not-a-uuid").status_code == 404
    assert (
        client.patch(
            "/api/v1/content/00000000-0000-0000-0000-000000000000", json={"title": "x"}, headers=headers
        ).status_code
        == 404
    )
