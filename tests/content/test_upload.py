from __future__ import annotations

import hashlib

from streampay.content.models import Content
from streampay.extensions import db
from tests.conftest import bearer, register
from tests.content.conftest import fetch, run_jobs, stored_files, upload


def get(client, who, content_id):
    return client.get(f"/api/v1/content/{content_id}", headers=bearer(who["access_token"]))


def test_video_goes_from_processing_to_ready_with_its_facts(app, client, creator, media_files, media_root):
    reply = upload(client, creator, media_files["video"], title="Harbour", category="travel", tags="sea, dawn")
    assert reply.status_code == 201, reply.json
    item = reply.json
    assert item["status"] == "processing"
    assert item["media_type"] == "video/mp4"
    assert item["price_per_second"] == "0.0010000"
    assert item["tags"] == ["sea", "dawn"]

    run_jobs(app)

    ready = get(client, creator, item["id"]).json
    assert ready["status"] == "ready"
    assert 2900 <= ready["duration_ms"] <= 3100
    assert ready["duration_seconds"] == 3
    assert ready["video_codec"] == "h264" and ready["audio_codec"] == "aac"
    assert (ready["width"], ready["height"]) == (320, 180)
    assert ready["bitrate"] > 0
    with open(media_files["video"], "rb") as f:
        assert ready["sha256"] == hashlib.sha256(f.read()).hexdigest()
    assert ready["has_thumbnail"] is True
    thumb = fetch(client, f"/api/v1/content/{item['id']}/thumbnail")
    assert thumb.status_code == 200 and thumb.mimetype == "image/jpeg" and thumb.data[:2] == b"\xff\xd8"
    assert len(stored_files(media_root)) == 2  # the media and its thumbnail


def test_audio_only_is_ready_without_a_thumbnail(app, client, creator, media_files):
    item = upload(client, creator, media_files["audio"]).json
    run_jobs(app)
    ready = get(client, creator, item["id"]).json
    assert ready["status"] == "ready"
    assert ready["media_type"] == "audio/mpeg"
    assert ready["video_codec"] is None and ready["audio_codec"]
    assert ready["has_thumbnail"] is False
    assert client.get(f"/api/v1/content/{item['id']}/thumbnail").status_code == 404


def test_truncated_video_fails_with_a_reason(app, client, creator, media_files):
    item = upload(client, creator, media_files["truncated"]).json
    run_jobs(app)
    failed = get(client, creator, item["id"]).json
    assert failed["status"] == "failed"
    assert "truncated or corrupt" in failed["failure_reason"]


def test_too_long_fails_with_a_reason(app_factory, media_root, media_files):
    app = app_factory(MEDIA_ROOT=media_root, MAX_MEDIA_SECONDS=1)
    client = app.test_client()
    creator = register(client, role="creator")
    item = upload(client, creator, media_files["video"]).json
    run_jobs(app)
    failed = get(client, creator, item["id"]).json
    assert failed["status"] == "failed" and failed["failure_reason"].startswith("Too long")


def test_running_the_job_twice_changes_nothing(app, client, creator, media_files):
    item = upload(client, creator, media_files["video"]).json
    run_jobs(app)
    first = get(client, creator, item["id"]).json
    from streampay.content.jobs import process_media

    with app.app_context():
        assert process_media(item["id"]) == "skipped"
    assert get(client, creator, item["id"]).json == first


def test_garbage_renamed_mp4_is_refused_and_leaves_no_file(client, creator, media_files, media_root):
    reply = upload(client, creator, media_files["garbage"])
    assert reply.status_code == 415
    assert reply.json["code"] == 415 and "audio or video" in reply.json["message"]
    assert stored_files(media_root) == []


def test_empty_file_is_refused(client, creator, media_files, media_root):
    reply = upload(client, creator, media_files["empty"])
    assert reply.status_code == 422
    assert reply.json["errors"] == {"file": ["Empty."]}
    assert stored_files(media_root) == []


def test_oversize_upload_answers_413_and_leaves_no_file(app_factory, media_root, media_files):
    app = app_factory(MEDIA_ROOT=media_root, MAX_CONTENT_LENGTH=10_000)
    client = app.test_client()
    creator = register(client, role="creator")
    reply = upload(client, creator, media_files["video"])
    assert reply.status_code == 413
    assert set(reply.json) >= {"code", "status", "message"}
    assert stored_files(media_root) == []


def test_bad_prices_are_refused(client, creator, media_files, media_root):
    for price in ["-1", "0.00000001", "0", "abc", "1e3", "", "1001"]:
        reply = upload(client, creator, media_files["video"], price_per_second=price)
        assert reply.status_code == 422, (price, reply.json)
        assert "price_per_second" in reply.json["errors"]["form"]
    assert stored_files(media_root) == []


def test_missing_file_and_missing_title_are_refused(client, creator, media_root):
    reply = client.post(
        "/api/v1/content/",
        data={"title": "x", "price_per_second": "1"},
        headers=bearer(creator["access_token"]),
        content_type="multipart/form-data",
    )
    assert reply.status_code == 422 and "file" in reply.json["errors"]["files"]
    reply = client.post("/api/v1/content/", json={"title": "x"}, headers=bearer(creator["access_token"]))
    assert reply.status_code == 422


def test_viewers_and_strangers_cannot_upload(client, viewer, media_files, media_root):
    assert upload(client, viewer, media_files["video"]).status_code == 403
    reply = client.post("/api/v1/content/", data={"title": "x"}, content_type="multipart/form-data")
    assert reply.status_code == 401
    assert stored_files(media_root) == []


def test_nothing_is_written_when_the_upload_is_refused(app, client, creator, media_files):
    upload(client, creator, media_files["garbage"])
    upload(client, creator, media_files["video"], price_per_second="-5")
    with app.app_context():
        assert db.session.query(Content).count() == 0
