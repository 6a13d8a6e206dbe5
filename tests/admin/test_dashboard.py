"""RQ's dashboard at /admin/rq/: an admin's pass opens it; nobody else, no stale pass and no cross-site page
gets in or changes a job."""

from __future__ import annotations

import pytest
from rq import Queue, SimpleWorker

from streampay.extensions import redis_client
from tests.conftest import bearer, register

SESSION = "/api/v1/admin/dashboard-session"
DASHBOARD = "/admin/rq/"
QUEUES_JSON = "/admin/rq/0/data/queues.json"
FAILED_JSON = "/admin/rq/0/data/jobs/default/failed/8/asc/1.json"


def broken() -> None:
    raise RuntimeError("the dashboard should show this")


@pytest.fixture
def failed_job(app) -> str:
    """A job that failed in a real worker, on the app's Redis."""
    with app.app_context():
        connection = redis_client()
        job = Queue("default", connection=connection).enqueue(broken)
        SimpleWorker([Queue("default", connection=connection)], connection=connection).work(
            burst=True, logging_level="WARNING"
        )
    return job.id


def open_pass(client, access_token: str):
    return client.post(SESSION, headers=bearer(access_token))


def cookies_of(reply) -> dict[str, str]:
    return {c.split("=", 1)[0]: c for c in reply.headers.getlist("Set-Cookie")}


def csrf(client) -> str:
    return client.get_cookie("_csrf_token", path="/admin/rq").value


def refused(reply, status: int, error: str) -> None:
    assert reply.status_code == status, reply.get_data(as_text=True)[:300]
    assert reply.is_json and reply.json["error"] == error and reply.json["code"] == status


def test_an_admin_opens_the_dashboard_and_sees_the_queues_and_a_failed_job(client, make_admin, failed_job):
    reply = open_pass(client, make_admin()["access_token"])
    assert reply.status_code == 201 and reply.json["url"] == DASHBOARD and reply.json["expires_in"] == 900
    cookies = cookies_of(reply)
    assert {"streampay_dashboard", "_csrf_token"} <= cookies.keys()
    for cookie in cookies.values():
        assert "Path=/admin/rq" in cookie and "SameSite=Strict" in cookie and "Max-Age=900" in cookie
        assert "; Secure" not in cookie  # development; production adds it
    assert "HttpOnly" in cookies["streampay_dashboard"] and "HttpOnly" not in cookies["_csrf_token"]

    page = client.get(DASHBOARD)
    assert page.status_code == 200 and "RQ dashboard" in page.get_data(as_text=True)
    queues = {q["name"]: q for q in client.get(QUEUES_JSON).json["queues"]}
    assert queues["default"]["failed_job_registry_count"] == 1
    jobs = client.get(FAILED_JSON).json["jobs"]
    assert [j["id"] for j in jobs] == [failed_job]
    assert "the dashboard should show this" in jobs[0]["exc_info"]
    assert client.get(f"/admin/rq/0/view/job/{failed_job}").status_code == 200
    assert client.get("/admin/rq/0/data/workers.json").status_code == 200


def test_viewers_creators_and_strangers_are_kept_out(client, failed_job):
    for role in ("viewer", "creator"):
        refused(open_pass(client, register(client, role)["access_token"]), 403, "forbidden")
    refused(client.post(SESSION), 401, "unauthorized")
    for path in (DASHBOARD, QUEUES_JSON, FAILED_JSON, "/admin/rq/static/js/jquery-3.5.1.min.js"):
        refused(client.get(path), 401, "unauthorized")
    refused(client.post(f"/admin/rq/job/{failed_job}/requeue"), 401, "unauthorized")


def test_an_access_token_is_not_a_pass_nor_a_pass_an_access_token(client, make_admin):
    admin = make_admin()
    client.set_cookie("streampay_dashboard", admin["access_token"], path="/admin/rq")
    refused(client.get(DASHBOARD), 401, "unauthorized")
    reply = open_pass(client, admin["access_token"])
    the_pass = client.get_cookie("streampay_dashboard", path="/admin/rq").value
    assert reply.status_code == 201
    refused(client.get("/api/v1/auth/profile", headers=bearer(the_pass)), 401, "unauthorized")


def test_signing_out_demotion_and_expiry_end_the_pass(app, client, make_admin):
    admin = make_admin()
    assert open_pass(client, admin["access_token"]).status_code == 201
    assert client.get(QUEUES_JSON).status_code == 200
    client.post("/api/v1/auth/logout", headers=bearer(admin["access_token"]))
    refused(client.get(QUEUES_JSON), 401, "unauthorized")

    demoted, boss = make_admin(), make_admin()
    assert open_pass(client, demoted["access_token"]).status_code == 201
    change = client.patch(
        f"/api/v1/users/{demoted['user']['id']}", json={"role": "viewer"}, headers=bearer(boss["access_token"])
    )
    assert change.status_code == 200
    refused(client.get(QUEUES_JSON), 403, "forbidden")

    app.config["DASHBOARD_SESSION_SECONDS"] = -60  # a pass issued already expired
    reply = open_pass(client, boss["access_token"])
    stale = cookies_of(reply)["streampay_dashboard"].split(";", 1)[0].split("=", 1)[1]
    refused(client.get(QUEUES_JSON, headers={"Cookie": f"streampay_dashboard={stale}"}), 401, "unauthorized")

    app.config["DASHBOARD_SESSION_SECONDS"] = 900
    assert open_pass(client, boss["access_token"]).status_code == 201
    assert client.delete(SESSION, headers=bearer(boss["access_token"])).status_code == 200
    refused(client.get(QUEUES_JSON), 401, "unauthorized")


def test_changes_need_the_pages_csrf_value_and_its_origin(app, client, make_admin, failed_job):
    assert open_pass(client, make_admin()["access_token"]).status_code == 201
    token = csrf(client)
    requeue, delete = f"/admin/rq/job/{failed_job}/requeue", f"/admin/rq/job/{failed_job}/delete"
    # A form on another site posting with the admin's cookie: no header it could read, or the browser says so.
    refused(client.post(requeue), 403, "forbidden")
    refused(client.post(delete, headers={"X-CSRFToken": "guessed"}), 403, "forbidden")
    refused(client.post(requeue, headers={"X-CSRFToken": token, "Origin": "https://evil.example"}), 403, "forbidden")
    refused(client.post(requeue, headers={"X-CSRFToken": token, "Sec-Fetch-Site": "cross-site"}), 403, "forbidden")
    refused(client.get("/admin/rq/requeue/default"), 403, "forbidden")  # rq-dashboard answers this GET too
    refused(client.post("/admin/rq/queue/default/failed/empty"), 403, "forbidden")
    queues = {q["name"]: q for q in client.get(QUEUES_JSON).json["queues"]}
    assert queues["default"]["failed_job_registry_count"] == 1 and queues["default"]["count"] == 0

    # The dashboard's own page: same origin, its cookie echoed in the header.
    same_site = {"X-CSRFToken": token, "Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
    reply = client.post(requeue, headers=same_site)
    assert reply.status_code == 200 and reply.json == {"status": "OK"}
    queues = {q["name"]: q for q in client.get(QUEUES_JSON).json["queues"]}
    assert queues["default"]["failed_job_registry_count"] == 0 and queues["default"]["count"] == 1
    assert client.post(delete, headers=same_site).json == {"status": "OK"}
    assert {q["name"]: q for q in client.get(QUEUES_JSON).json["queues"]}["default"]["count"] == 0


def test_in_production_the_pass_is_sent_over_https_only(app, client, make_admin):
    admin = make_admin()
    app.config["APP_ENV"] = "production"
    for cookie in cookies_of(open_pass(client, admin["access_token"])).values():
        assert "; Secure" in cookie


def test_the_dashboards_pages_alone_may_eval_and_run_only_their_nonced_script(client, make_admin):
    assert open_pass(client, make_admin()["access_token"]).status_code == 201
    page = client.get(DASHBOARD)
    policy = page.headers["Content-Security-Policy"]
    nonce = policy.split("'nonce-", 1)[1].split("'", 1)[0]
    assert "'unsafe-eval'" in policy and "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";")[0]
    assert f'<script type="text/javascript" nonce="{nonce}">' in page.get_data(as_text=True)
    assert "'unsafe-eval'" not in client.get("/app/").headers["Content-Security-Policy"]
