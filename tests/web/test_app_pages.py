"""The pages are served by the app at /app/ (and / leads there), and an operator can turn them off."""

from __future__ import annotations

SVG_NAMESPACE = b"http://www.w3.org/2000/svg"  # a name, never fetched


def test_the_pages_are_served_at_app_and_home_leads_there(client):
    home = client.get("/")
    assert home.status_code == 302 and home.location == "/app/"
    page = client.get("/app/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert '<script type="module" src="/app/static/js/app.js">' in html
    assert 'data-api="/api/v1"' in html and 'data-heartbeat-seconds="5"' in html
    # No CDN: every asset the page names is served by the app itself.
    assert "http://" not in html and "https://" not in html
    for asset in ("js/app.js", "js/player.js", "js/api.js", "css/app.css", "favicon.svg"):
        reply = client.get(f"/app/static/{asset}")
        body = reply.get_data().replace(SVG_NAMESPACE, b"")
        reply.close()
        assert reply.status_code == 200, asset
        assert b"https://" not in body and b"http://" not in body, asset


def test_an_operator_turns_the_pages_off(app_factory):
    client = app_factory(WEB_PAGES_ENABLED=False).test_client()
    assert client.get("/").status_code == 404
    assert client.get("/app/").status_code == 404
    assert client.get("/app/static/js/app.js").status_code == 404
    assert client.get("/healthz").status_code == 200
