from __future__ import annotations

from tests.conftest import bearer
from tests.content.conftest import run_jobs, upload


def test_list_by_status_and_reprocess(app, client, runner, creator, media_files):
    good = upload(client, creator, media_files["video"], title="Good clip").json
    bad = upload(client, creator, media_files["truncated"], title="Broken clip").json
    run_jobs(app)

    failed = runner.invoke(args=["content", "list", "--status", "failed"])
    assert failed.exit_code == 0
    assert "Broken clip" in failed.output and "truncated" in failed.output
    assert "Good clip" not in failed.output

    result = runner.invoke(args=["content", "reprocess", good["id"]])
    assert result.exit_code == 0, result.output
    item = client.get(f"/api/v1/content/{good['id']}", headers=bearer(creator["access_token"])).json
    assert item["status"] == "processing"
    run_jobs(app)
    item = client.get(f"/api/v1/content/{good['id']}", headers=bearer(creator["access_token"])).json
    assert item["status"] == "ready" and item["duration_ms"]

    assert runner.invoke(args=["content", "reprocess", bad["id"]]).exit_code == 0
    run_jobs(app)
    assert "Broken clip" in runner.invoke(args=["content", "list", "--status", "failed"]).output

    missing = runner.invoke(args=["content", "reprocess", "00000000-0000-0000-0000-000000000000"])
    assert missing.exit_code != 0 and "no content" in missing.output


def test_seed_makes_something_to_browse_and_is_safe_twice(app, client, runner):
    first = runner.invoke(args=["seed"])
    assert first.exit_code == 0, first.output
    assert first.output.count("added ") == 3
    run_jobs(app)
    items = client.get("/api/v1/content/").json
    assert len(items) == 3
    assert {i["category"] for i in items} == {"travel", "food", "music"}
    assert all(i["status"] == "ready" and i["duration_ms"] for i in items)

    again = runner.invoke(args=["seed"])
    assert again.exit_code == 0 and "added " not in again.output
    login = client.post("/api/v1/auth/login", json={"email": "viewer@demo.streampay", "password": "streampay-demo-1"})
    assert login.status_code == 200
