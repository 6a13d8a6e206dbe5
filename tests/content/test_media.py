from __future__ import annotations

import os

from tests.conftest import bearer, register
from tests.content.conftest import fetch, ready_item


def test_range_requests(app, client, creator, media_files):
    item = ready_item(app, client, creator, media_files["video"])
    url = f"/api/v1/content/{item['id']}/media"
    headers = bearer(creator["access_token"])
    size = os.path.getsize(media_files["video"])
    with open(media_files["video"], "rb") as f:
        original = f.read()

    whole = fetch(client, url, headers=headers)
    assert whole.status_code == 200 and whole.data == original
    assert whole.headers["Accept-Ranges"] == "bytes"
    assert whole.mimetype == "video/mp4"

    part = fetch(client, url, headers={**headers, "Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 100-199/{size}"
    assert part.data == original[100:200]

    tail = fetch(client, url, headers={**headers, "Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.data == original[-50:]

    beyond = fetch(client, url, headers={**headers, "Range": f"bytes={size + 10}-"})
    assert beyond.status_code == 416
    assert beyond.headers["Content-Range"] == f"bytes */{size}"


def test_media_is_only_for_the_creator_and_admins_for_now(app, client, creator, media_files, make_admin):
    item = ready_item(app, client, creator, media_files["audio"])
    url = f"/api/v1/content/{item['id']}/media"
    assert fetch(client, url).status_code == 401
    viewer = register(client)
    assert fetch(client, url, headers=bearer(viewer["access_token"])).status_code == 403
    admin = make_admin()
    assert fetch(client, url, headers=bearer(admin["access_token"])).status_code == 200
