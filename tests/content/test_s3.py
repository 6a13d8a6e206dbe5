"""The S3 backend against a local S3-compatible server (moto in server mode) on loopback."""

from __future__ import annotations

import socket
import urllib.request

import boto3
import pytest
from moto.server import ThreadedMotoServer
from rq import Queue
from rq.registry import ScheduledJobRegistry

from streampay.extensions import redis_client
from tests.conftest import bearer, register
from tests.content.conftest import run_jobs, upload

BUCKET = "streampay-media"


@pytest.fixture(scope="module")
def s3_endpoint():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3(s3_endpoint):
    client = boto3.client(
        "s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    )
    client.create_bucket(Bucket=BUCKET)
    yield client
    for obj in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=obj["Key"])
    client.delete_bucket(Bucket=BUCKET)


@pytest.fixture
def app(app_factory, s3_endpoint, media_root):
    return app_factory(
        S3_BUCKET_NAME=BUCKET,
        S3_ENDPOINT_URL=s3_endpoint,
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        MEDIA_ROOT=media_root,
    )


def keys(s3) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def test_upload_process_and_play_through_s3(app, client, s3, media_files, media_root):
    creator = register(client, role="creator")
    item = upload(client, creator, media_files["video"]).json
    assert keys(s3) == [f"media/{item['id']}.mp4"]
    run_jobs(app)
    ready = client.get(f"/api/v1/content/{item['id']}", headers=bearer(creator["access_token"])).json
    assert ready["status"] == "ready" and ready["has_thumbnail"]
    assert keys(s3) == sorted([f"media/{item['id']}.mp4", f"thumbnails/{item['id']}.jpg"])

    reply = client.get(f"/api/v1/content/{item['id']}/media", headers=bearer(creator["access_token"]))
    assert reply.status_code == 302
    signed = reply.headers["Location"]
    assert "Signature" in signed or "X-Amz-Signature" in signed
    request = urllib.request.Request(signed, headers={"Range": "bytes=0-99"})
    with urllib.request.urlopen(request, timeout=10) as got:  # noqa: S310 (loopback S3)
        assert got.status == 206
        with open(media_files["video"], "rb") as f:
            assert got.read() == f.read(100)


def test_refused_upload_leaves_nothing_in_the_bucket(client, s3, media_files):
    creator = register(client, role="creator")
    assert upload(client, creator, media_files["garbage"]).status_code == 415
    assert upload(client, creator, media_files["video"], price_per_second="-1").status_code == 422
    assert keys(s3) == []


def test_storage_outage_retries_the_job_instead_of_failing_the_item(app, client, s3, media_files):
    creator = register(client, role="creator")
    item = upload(client, creator, media_files["video"]).json
    live = app.config["S3_ENDPOINT_URL"]
    # S3 goes away between the upload and the job (nothing listens on port 9).
    app.config["S3_ENDPOINT_URL"] = "http://127.0.0.1:9"
    app.extensions.pop("streampay.storage")
    run_jobs(app)
    with app.app_context():
        scheduled = ScheduledJobRegistry(queue=Queue("default", connection=redis_client()))
        assert f"process-media-{item['id']}" in scheduled.get_job_ids()
    assert client.get(f"/api/v1/content/{item['id']}", headers=bearer(creator["access_token"])).json["status"] == (
        "processing"
    )
    # New uploads during the outage are refused whole: 503, no row.
    reply = upload(client, creator, media_files["video"])
    assert reply.status_code == 503 and reply.json["code"] == 503
    assert len(client.get("/api/v1/content/", headers=bearer(creator["access_token"])).json) == 1

    app.config["S3_ENDPOINT_URL"] = live
    app.extensions.pop("streampay.storage")
    with app.app_context():
        from streampay.content.jobs import process_media

        assert process_media(item["id"]) == "ready"
