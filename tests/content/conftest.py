from __future__ import annotations

import os
from fractions import Fraction

import pytest
from rq import Queue, SimpleWorker

from streampay.content import samples
from streampay.extensions import redis_client
from streampay.jobs import QUEUES
from tests.conftest import bearer, register


@pytest.fixture(scope="session")
def media_files(tmp_path_factory) -> dict[str, str]:
    """Real media made with PyAV, and the broken kinds creators upload by mistake."""
    folder = tmp_path_factory.mktemp("media")
    video = samples.make_video(str(folder / "clip.mp4"), seconds=3)
    audio = samples.make_audio(str(folder / "tone.mp3"), seconds=2)
    # An hour long, one small frame every ten seconds: made in a second, long enough to bill for minutes.
    feature = samples.make_video(
        str(folder / "feature.mp4"), seconds=3600, fps=Fraction(1, 10), size=(64, 36), with_audio=False
    )
    with open(video, "rb") as f:
        data = f.read()
    files = {"video": video, "audio": audio, "feature": feature}
    for name, content in {
        "truncated": data[: len(data) // 2],
        "garbage": b"definitely not a video " * 200,
        "empty": b"",
    }.items():
        path = folder / f"{name}.mp4"
        path.write_bytes(content)
        files[name] = str(path)
    return files


@pytest.fixture
def media_root(tmp_path) -> str:
    root = tmp_path / "media"
    root.mkdir()
    return str(root)


@pytest.fixture
def app(app_factory, media_root):
    return app_factory(MEDIA_ROOT=media_root)


@pytest.fixture
def creator(client) -> dict:
    return register(client, role="creator")


@pytest.fixture
def viewer(client) -> dict:
    return register(client, role="viewer")


def stored_files(root: str) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def upload(client, who: dict, path: str, **fields):
    form = {"title": "A clip", "price_per_second": "0.0010000", **fields}
    with open(path, "rb") as f:
        form["file"] = (f, os.path.basename(path))
        return client.post(
            "/api/v1/content/", data=form, headers=bearer(who["access_token"]), content_type="multipart/form-data"
        )


def run_jobs(app) -> None:
    """Everything queued, through a real RQ worker in burst mode."""
    with app.app_context():
        connection = redis_client()
        SimpleWorker([Queue(n, connection=connection) for n in QUEUES], connection=connection).work(
            burst=True, logging_level="WARNING"
        )


def ready_item(app, client, who: dict, path: str, **fields) -> dict:
    reply = upload(client, who, path, **fields)
    assert reply.status_code == 201, reply.json
    run_jobs(app)
    item = client.get(f"/api/v1/content/{reply.json['id']}", headers=bearer(who["access_token"])).json
    assert item["status"] == "ready", item
    return item


def fetch(client, url: str, **kwargs):
    """GET a file response, read it whole and close it (file-backed bodies hold the file open)."""
    reply = client.get(url, **kwargs)
    reply.get_data()
    reply.close()
    return reply
