"""The pages in a real Chromium (Debian's, driven by Playwright) against the Procfile's web and worker processes.

They share state with the server only through PostgreSQL and Redis, so they run on the PostgreSQL + Redis pass.
The server runs with a one-second heartbeat and a three-second timeout, so pauses and windows take seconds.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
import requests
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright
from rq import Queue
from rq.job import JobStatus
from stellar_sdk import Keypair, TransactionEnvelope

from streampay.content import samples
from streampay.sandbox.horizon import HorizonStandin
from tests.conftest import PASSWORD, empty_everything, make_app
from tests.test_procfile import start, stop, wait_for, web_dyno

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
# Where the pages' pictures go: docs/screenshots when asked (SCREENSHOTS_DIR=docs/screenshots), so that a test
# run does not leave the checkout changed.
SCREENSHOTS = Path(os.environ.get("SCREENSHOTS_DIR") or Path(tempfile.gettempdir()) / "streampay-screenshots")
# Every clip costs this much per second: 100,000 stroops.
PRICE = "0.0100000"
PASSPHRASE = "Test SDF Network ; September 2015"
SERVER_ENV = {
    "HEARTBEAT_INTERVAL_SECONDS": "1",
    "HEARTBEAT_TIMEOUT_SECONDS": "3",
    "STREAM_WINDOW_SECONDS": "3",
    "STREAM_MIN_SECONDS": "2",
    "CHECKPOINT_LEAD_SECONDS": "1",
    "BALANCE_LOW_SECONDS": "6",
    "PLATFORM_FEE_BPS": "1000",
    "RATELIMIT_ENABLED": "false",
    "PASSWORD_HASH_TIME_COST": "1",
    "PASSWORD_HASH_MEMORY_KIB": "1024",
    # The pages are under test, not admission: a socket is taken however long a heartbeat waited on a busy CI box.
    "WS_ADMIT_MAX_METER_WAIT_MS": "60000",
}
_serial = itertools.count()

# Each browser test module sets `pytestmark = IN_A_BROWSER`.
IN_A_BROWSER = [
    pytest.mark.skipif(
        not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")),
        reason="the browser, the server and the tests share state only through a real PostgreSQL and Redis",
    ),
    pytest.mark.skipif(
        not shutil.which(CHROMIUM),
        reason=f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run installs it)",
    ),
]


class Site:
    """The running server: its address, the CLI beside it, and plain HTTP for what the test sets up."""

    def __init__(self, base: str, custody: Keypair, runner, horizon: HorizonStandin, log, env: dict):
        self.base = base
        self.env = env  # the web dyno's settings, for a second one beside it
        self.log = log  # what the web dyno has printed so far
        self.custody = custody
        self.runner = runner
        self.horizon = horizon

    def call(self, method: str, path: str, token: str | None = None, **kwargs) -> dict:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        reply = requests.request(method, self.base + path, headers=headers, timeout=10, **kwargs)
        assert reply.ok, reply.text
        return reply.json() if reply.content else {}

    def register(self, role: str = "viewer") -> dict:
        n = next(_serial)
        body = {"email": f"web{n}-{time.time_ns()}@example.com", "username": f"web{n}_{time.time_ns() % 10**9}"}
        reply = self.call("POST", "/api/v1/auth/register", json={**body, "password": PASSWORD, "role": role})
        return {**reply, "email": body["email"]}

    def credit(self, email: str, amount: str) -> None:
        """What an operator does: `flask wallet credit`."""
        result = self.runner.invoke(args=["wallet", "credit", email, amount, "--reason", "test top-up"])
        assert result.exit_code == 0, result.output

    def link_payout_address(self, creator: dict) -> Keypair:
        """A funded Stellar account, proven with SEP-10 as a wallet does it."""
        keypair = Keypair.random()
        self.horizon.fund(keypair.public_key, 10 * 10_000_000)
        challenge = self.call("POST", "/api/v1/stellar/auth/challenge", json={"account": keypair.public_key})
        envelope = TransactionEnvelope.from_xdr(challenge["transaction"], challenge["network_passphrase"])
        envelope.sign(keypair)
        signed = {"transaction": envelope.to_xdr()}
        self.call("POST", "/api/v1/stellar/auth/verify", creator["access_token"], json=signed)
        return keypair

    def fold_analytics(self) -> None:
        """What the clock does every ANALYTICS_FOLD_INTERVAL_SECONDS: the fold job, on the worker."""
        connection = redis.Redis.from_url(os.environ["REDIS_URL"])
        job = Queue("low", connection=connection).enqueue("streampay.analytics.jobs.fold")
        assert wait_for(lambda: job.get_status(refresh=True) in (JobStatus.FINISHED, JobStatus.FAILED), 30)
        assert job.get_status() == JobStatus.FINISHED, job.latest_result()

    def run_payouts(self) -> None:
        """What the clock does every PAYOUT_INTERVAL_SECONDS: `flask payouts run`."""
        result = self.runner.invoke(args=["payouts", "run"])
        assert result.exit_code == 0, result.output

    def upload(self, creator: dict, path: str, title: str, category: str = "demo") -> dict:
        form = {"title": title, "price_per_second": PRICE, "category": category, "description": f"{title}, by PyAV."}
        with open(path, "rb") as media:
            item = self.call("POST", "/api/v1/content/", creator["access_token"], data=form, files={"file": media})
        return self.wait_ready(creator, item["id"])

    def wait_ready(self, who: dict, content_id: str) -> dict:
        def ready():
            item = self.call("GET", f"/api/v1/content/{content_id}", who["access_token"])
            return item if item["status"] != "processing" else None

        item = wait_for(ready, 60)
        assert item and item["status"] == "ready", item
        return item

    def wallet(self, who: dict) -> dict:
        return self.call("GET", "/api/v1/wallet", who["access_token"])

    def sessions(self, who: dict) -> list[dict]:
        return self.call("GET", "/api/v1/streaming/sessions?page_size=100", who["access_token"])


@pytest.fixture(scope="package")
def clips(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("clips")
    return {
        "long": samples.make_video(str(folder / "harbour.mp4"), seconds=8, label="Harbour"),
        "short": samples.make_video(str(folder / "sprint.mp4"), seconds=3, label="Sprint"),
        "runway": samples.make_video(str(folder / "runway.mp4"), seconds=10, label="Runway"),
    }


@pytest.fixture(scope="package")
def site(migrated, tmp_path_factory):
    """The Procfile's web line (gunicorn, gevent) and worker line, with a custody account for deposits."""
    custody = Keypair.random()
    horizon = HorizonStandin(network_passphrase=PASSPHRASE).start()
    horizon.fund(custody.public_key, 1000 * 10_000_000)
    stellar = {"STELLAR_NETWORK": "testnet", "STELLAR_HORIZON_URL": horizon.url, "PAYOUT_MIN_AMOUNT": "0.01"}
    env = {
        **SERVER_ENV,
        **stellar,
        "MEDIA_ROOT": str(tmp_path_factory.mktemp("web-media")),
        "STELLAR_MASTER_SECRET_KEY": custody.secret,
    }
    cli_app = make_app(migrated, STELLAR_MASTER_SECRET_KEY=custody.secret, **stellar)
    worker = start("worker", **env)
    try:
        with web_dyno(WEB_CONCURRENCY="1", WEB_CONNECTIONS="200", **env) as (port, log):
            yield Site(f"http://127.0.0.1:{port}", custody, cli_app.test_cli_runner(), horizon, log, env)
        assert "Traceback" not in log(), log()
    finally:
        worker_log = stop(worker)
        horizon.stop()
        empty_everything(cli_app)
    assert "Traceback" not in worker_log, worker_log


@pytest.fixture(scope="package")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


FAILED = pytest.StashKey[bool]()


@pytest.fixture
def page(browser, site, request):
    """A fresh browser profile (no tokens) on the site; page errors fail the test, a failure leaves a screenshot."""
    context = browser.new_context(base_url=site.base, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)  # Playwright's default: CI runs two test suites side by side
    # With the network cable pulled: anything a page asks of another host fails the test.
    outside = []
    context.route(
        lambda url: urlsplit(url).hostname not in ("127.0.0.1", "localhost"),
        lambda r: outside.append(r.request.url) or r.abort(),
    )
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # Chromium logs every 4xx a page fetches as an error; those the pages expect are checked by the tests.
    page.on(
        "console",
        lambda msg: msg.type == "error" and "Failed to load resource" not in msg.text and errors.append(msg.text),
    )
    yield page
    if request.node.stash.get(FAILED, False):
        shot = Path(tempfile.gettempdir()) / f"streampay-web-{request.node.name}.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot of the failure: {shot}")
        print("the web dyno's last lines:", *site.log().splitlines()[-40:], sep="\n")
    context.close()
    assert not errors, errors
    assert not outside, f"the pages reached outside the server: {outside}"


def sign_in(page, who: dict) -> None:
    page.goto("/app/#/sign-in")
    page.get_by_label("Email").fill(who["email"])
    page.get_by_label("Password").fill(PASSWORD)
    submit(page, "Sign in", lambda url: "#/sign-in" not in url)


def submit(page, button: str, leads_to) -> None:
    """Click a form's button and wait for the page it leads to; if it never comes, fail with what the form says."""
    page.get_by_role("button", name=button).click()
    try:
        page.wait_for_url(leads_to)
    except PlaywrightTimeout:
        said = page.locator(".form-status").all_inner_texts()
        raise AssertionError(f"{button!r} led nowhere from {page.url}; the form says {said}") from None


def screenshot(page, name: str) -> None:
    """The page as a reader of docs/web.md sees it, after an accessibility audit of it (axe-core, WCAG 2 A/AA)."""
    audit = Axe().run(page, options={"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21aa"]}})
    problems = [f"{v['id']}: {v['help']} at {[n['target'] for n in v['nodes']]}" for v in audit.response["violations"]]
    assert not problems, f"{name}: {problems}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
