"""Every failure speaks the one JSON error shape; CORS answers only the configured origins."""

from __future__ import annotations

from http import HTTPStatus

import pytest

from tests.conftest import bearer, register

ALLOWED_ORIGIN = "http://localhost:3000"  # the development default of CORS_ORIGIN


def error_of(reply, code: int) -> dict:
    assert reply.status_code == code, reply.get_data(as_text=True)
    assert reply.content_type == "application/json"
    body = reply.json
    assert {"code", "status", "error", "message"} <= set(body) <= {"code", "status", "error", "message", "errors"}
    assert body["code"] == code
    assert isinstance(body["error"], str) and body["error"].isidentifier()  # a string a program switches on
    assert body["status"] == HTTPStatus(code).phrase
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body.get("errors", {}), dict)
    return body


@pytest.mark.parametrize(
    "path",
    ["/nope", "/api/v1/nope", "/api/v1/auth/nope", "/api/v1/users/me/extra", "/api/v2/users/me", "/api/docs/x"],
)
def test_unknown_path_is_404(client, path):
    error_of(client.get(path), 404)
    error_of(client.post(path, json={}), 404)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/api/v1/auth/login", {"POST"}),
        ("DELETE", "/api/v1/auth/register", {"POST"}),
        ("PUT", "/api/v1/auth/refresh", {"POST"}),
        ("POST", "/api/v1/auth/profile", {"GET"}),
        ("DELETE", "/api/v1/users/me", {"GET", "PATCH"}),
        ("POST", "/healthz", {"GET"}),
    ],
)
def test_wrong_method_is_405_with_allow(client, method, path, allowed):
    reply = client.open(path, method=method)
    error_of(reply, 405)
    offered = {m.strip() for m in reply.headers["Allow"].split(",")}
    assert allowed <= offered
    assert offered <= allowed | {"HEAD", "OPTIONS"}


def test_body_too_large_is_413(app_factory):
    client = app_factory(MAX_CONTENT_LENGTH=1024).test_client()
    reply = client.post("/api/v1/auth/login", json={"email": "a@example.com", "password": "x" * 2000})
    error_of(reply, 413)


def test_unexpected_failure_is_500_in_the_shape_without_details(app, caplog):
    def broken():
        raise RuntimeError("secret detail: db password is hunter2")

    app.add_url_rule("/broken-for-test", view_func=broken)
    reply = app.test_client().get("/broken-for-test")
    body = error_of(reply, 500)
    assert "hunter2" not in reply.get_data(as_text=True)
    assert "errors" not in body
    assert any(r.levelname == "ERROR" and r.exc_info for r in caplog.records)


def test_error_keys_that_are_not_strings_still_make_a_reply(client):
    """A multipart part with no name comes back from validation keyed None: still a 422, not a crash."""
    creator = register(client, role="creator")
    nameless_part = b"--XX\r\nContent-Disposition: form-data\r\n\r\nnull\r\n--XX--\r\n"
    reply = client.post(
        "/api/v1/content/",
        data=nameless_part,
        content_type="multipart/form-data; boundary=XX",
        headers=bearer(creator["access_token"]),
    )
    body = error_of(reply, 422)
    assert "None" in body["errors"]["form"]


# --- CORS -----------------------------------------------------------------------------------------------------


def preflight(client, origin: str, method: str = "POST", path: str = "/api/v1/auth/login"):
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "Authorization, Content-Type",
        },
    )


def test_preflight_from_the_configured_origin_is_allowed(client):
    reply = preflight(client, ALLOWED_ORIGIN)
    assert reply.status_code == 200
    assert reply.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert "POST" in reply.headers["Access-Control-Allow-Methods"]
    allowed_headers = reply.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed_headers and "content-type" in allowed_headers


@pytest.mark.parametrize(
    "origin",
    ["http://evil.example", "http://localhost:3001", "https://localhost:3000", "http://localhost:3000.evil.example"],
)
def test_preflight_from_another_origin_gets_no_allow_origin(client, origin):
    reply = preflight(client, origin)
    assert "Access-Control-Allow-Origin" not in reply.headers


def test_actual_request_exposes_the_headers_a_browser_client_reads(client):
    reply = client.get("/api/v1/auth/profile", headers={"Origin": ALLOWED_ORIGIN})
    assert reply.status_code == 401
    assert reply.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    exposed = {h.strip() for h in reply.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"X-Pagination", "X-Request-ID", "Retry-After"} <= exposed
    other = client.get("/api/v1/auth/profile", headers={"Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_origins_come_from_configuration(app_factory):
    client = app_factory(CORS_ORIGINS=["https://app.streampay.example"]).test_client()
    reply = preflight(client, "https://app.streampay.example")
    assert reply.headers["Access-Control-Allow-Origin"] == "https://app.streampay.example"
    assert "Access-Control-Allow-Origin" not in preflight(client, ALLOWED_ORIGIN).headers
