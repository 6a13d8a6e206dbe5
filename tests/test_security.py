"""Security headers on every reply, HSTS in production, no server version, and Swagger UI with no internet."""

from __future__ import annotations

import os
import re
import shutil
import threading
import urllib.request

import pytest
from werkzeug.serving import make_server

from streampay import create_app
from tests.conftest import TEST_CONFIG, bearer, register
from tests.test_procfile import web_dyno

STRONG_SECRET = "s" * 40


def assert_secure(reply) -> None:
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert reply.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in reply.headers["Content-Security-Policy"]
    assert reply.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert "Server" not in reply.headers or not re.search(r"\d", reply.headers["Server"])


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/healthz"),
        ("GET", "/api/openapi.json"),
        ("GET", "/api/docs"),
        ("GET", "/api/v1/auth/profile"),  # 401
        ("GET", "/api/v1/nope"),  # 404
        ("DELETE", "/api/v1/auth/login"),  # 405
        ("POST", "/api/v1/auth/login"),  # 400/422
    ],
)
def test_every_reply_carries_the_security_headers(client, method, path):
    reply = client.open(path, method=method, json={} if method == "POST" else None)
    assert_secure(reply)
    assert "Strict-Transport-Security" not in reply.headers  # development: no HSTS


def test_a_signed_in_reply_carries_them_too(client):
    viewer = register(client)
    reply = client.get("/api/v1/wallet", headers=bearer(viewer["access_token"]))
    assert reply.status_code == 200
    assert_secure(reply)


def test_production_sends_hsts_on_https():
    # Nothing here reaches the database or Redis, so their production URLs point nowhere.
    app = create_app(
        {
            **TEST_CONFIG,
            "APP_ENV": "production",
            "JWT_SECRET_KEY": STRONG_SECRET,
            "JWT_REFRESH_SECRET": STRONG_SECRET + "r",
            "SQLALCHEMY_DATABASE_URI": "postgresql+psycopg2://nobody@127.0.0.1:9/unused",
            "REDIS_URL": "redis://127.0.0.1:9/0",
        }
    )
    client = app.test_client()
    reply = client.get("/healthz", base_url="https://api.example.com")
    assert reply.status_code == 200
    assert reply.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert_secure(reply)
    # Behind the router: a plain-HTTP hop that the trusted proxy marks as HTTPS.
    behind = client.get("/healthz", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" in behind.headers
    # No redirect of plain HTTP: the router ends TLS.
    assert client.get("/healthz").status_code == 200


def test_only_the_replys_nonce_lets_an_inline_script_run(client):
    first, second = client.get("/api/docs"), client.get("/api/docs")
    policies = [
        dict(p.strip().split(" ", 1) for p in r.headers["Content-Security-Policy"].split(";")) for r in (first, second)
    ]
    nonces = [re.search(r"'nonce-([^']+)'", p["script-src"]).group(1) for p in policies]
    assert nonces[0] != nonces[1] and all("unsafe-inline" not in p["script-src"] for p in policies)
    assert f'<script nonce="{nonces[0]}">' in first.get_data(as_text=True)


def test_swagger_ui_loads_its_assets_from_the_app(client):
    page = client.get("/api/docs").get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert assets and not [a for a in assets if a.startswith(("http:", "https:", "//"))], assets
    for asset in assets:
        with client.get(asset) as reply:
            assert reply.status_code == 200, asset
            assert len(reply.data) > 1000
            assert_secure(reply)


@pytest.mark.skipif(not shutil.which("chromium"), reason="needs Chromium")
def test_swagger_ui_renders_in_a_browser_with_no_internet(app):
    from playwright.sync_api import sync_playwright

    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    outside = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
            page = browser.new_page()

            def only_loopback(route):
                if route.request.url.startswith("http://127.0.0.1"):
                    return route.continue_()
                outside.append(route.request.url)
                return route.abort()

            page.route("**/*", only_loopback)
            refused = []
            page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
            page.goto(f"http://127.0.0.1:{httpd.server_port}/api/docs")
            page.wait_for_selector(".opblock-tag", timeout=20_000)
            assert page.locator(".opblock-tag").count() >= 5
            assert refused == []
            browser.close()
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert outside == []


@pytest.mark.skipif(
    not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")),
    reason="the web dyno runs on a real PostgreSQL and Redis",
)
def test_the_web_dyno_names_no_server_version():
    with web_dyno(WEB_CONCURRENCY="1", WEB_CONNECTIONS="50") as (port, _):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as reply:  # noqa: S310
            headers = reply.headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "gunicorn" not in headers.get("Server", "").lower()
    assert not re.search(r"\d", headers.get("Server", ""))
