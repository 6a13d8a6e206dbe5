"""An admin reaches RQ's dashboard from the pages, sees a failed job and requeues it with the dashboard's own
buttons (its script echoes the pass's CSRF value); after signing out, the dashboard is closed."""

from __future__ import annotations

import os

import redis
from playwright.sync_api import expect
from rq import Queue, SimpleWorker

from tests.conftest import PASSWORD
from tests.web.conftest import IN_A_BROWSER, sign_in

pytestmark = IN_A_BROWSER


def test_an_admin_opens_the_rq_dashboard_and_requeues_a_failed_job(page, site):
    email = f"ops-{os.getpid()}@example.com"
    made = site.runner.invoke(
        args=["users", "create", email, "--username", f"ops{os.getpid()}", "--password", PASSWORD, "--role", "admin"]
    )
    assert made.exit_code == 0, made.output
    # A job that fails here, on a queue of its own (the server's worker logs no traceback of it).
    connection = redis.Redis.from_url(os.environ["REDIS_URL"])
    queue = Queue("dashboard-check", connection=connection)
    job = queue.enqueue("streampay.no_such_module.job")
    SimpleWorker([queue], connection=connection).work(burst=True, logging_level="CRITICAL")
    assert job.get_status(refresh=True) == "failed"

    sign_in(page, {"email": email})
    page.get_by_role("link", name="Jobs").click()
    page.wait_for_url("**/admin/rq/")
    expect(page.locator("#queues")).to_contain_text("dashboard-check")

    page.goto("/admin/rq/0/view/jobs/dashboard-check/failed/8/asc/1")
    expect(page.locator("#jobs")).to_contain_text(job.id)
    with page.expect_response(lambda r: r.url.endswith(f"/job/{job.id}/requeue")) as requeued:
        page.locator(f"#jobs tr[data-job-id='{job.id}'] [data-role=requeue-job-btn]").click()
    assert requeued.value.status == 200, requeued.value.text()
    assert job.get_status(refresh=True) == "queued"
    queue.delete(delete_jobs=True)

    page.goto("/app/#/catalogue")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**#/sign-in")
    closed = page.request.get(f"{site.base}/admin/rq/0/data/queues.json")
    assert closed.status == 401 and closed.json()["error"] == "unauthorized"
