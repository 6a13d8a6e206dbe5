"""Sign-up, sign-in and refresh are rate limited per client; nothing else is."""

from __future__ import annotations

from http import HTTPStatus

import pytest

from tests.conftest import PASSWORD, bearer, register

LIMIT = "3 per 60 second"
REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"


@pytest.fixture
def app(app_factory):
    return app_factory(AUTH_RATE_LIMIT=LIMIT)


def limited(reply) -> dict:
    assert reply.status_code == 429, reply.get_data(as_text=True)
    body = reply.json
    assert {"code", "status", "error", "message"} <= set(body) <= {"code", "status", "error", "message", "errors"}
    assert body["code"] == 429
    assert body["status"] == HTTPStatus.TOO_MANY_REQUESTS.phrase
    assert "3 per 60 second" in body["message"]
    assert 0 < int(reply.headers["Retry-After"]) <= 60
    return body


def users(runner) -> int:
    result = runner.invoke(args=["users", "list"])
    assert result.exit_code == 0, result.output
    return len(result.output.splitlines())


def test_fourth_login_in_the_window_is_429(client):
    user = register(client)["user"]
    attempts = [
        {"email": user["email"], "password": "wrong-pass-1"},
        {"email": "nobody@example.com", "password": PASSWORD},
        {"email": user["email"], "password": PASSWORD},
    ]
    # Failed attempts count too: that is what slows down password guessing.
    assert [client.post(LOGIN, json=a).status_code for a in attempts] == [401, 401, 200]
    limited(client.post(LOGIN, json={"email": user["email"], "password": PASSWORD}))


def test_fourth_register_in_the_window_is_429_and_writes_nothing(client, runner):
    for n in range(3):
        register(client, email=f"r{n}@example.com", username=f"r{n}user")
    limited(client.post(REGISTER, json={"email": "r3@example.com", "username": "r3user", "password": PASSWORD}))
    assert users(runner) == 3


def test_refused_sign_ups_count_against_the_limit(client):
    for _ in range(3):
        assert client.post(REGISTER, json={"email": "bad"}).status_code == 422
    limited(client.post(REGISTER, json={"email": "ok@example.com", "username": "okuser", "password": PASSWORD}))


def test_fourth_refresh_in_the_window_is_429(client):
    pair = register(client)
    for _ in range(3):
        reply = client.post(REFRESH, headers=bearer(pair["refresh_token"]))
        assert reply.status_code == 200, reply.json
        pair = reply.json
    limited(client.post(REFRESH, headers=bearer(pair["refresh_token"])))


def test_other_endpoints_are_unaffected(client, make_admin):
    admin = make_admin()  # one login
    user = register(client)
    for _ in range(2):
        client.post(LOGIN, json={"email": user["user"]["email"], "password": PASSWORD})
    limited(client.post(LOGIN, json={"email": user["user"]["email"], "password": PASSWORD}))

    token = bearer(user["access_token"])
    for _ in range(10):
        assert client.get("/api/v1/auth/profile", headers=token).status_code == 200
        assert client.get("/api/v1/users/me", headers=token).status_code == 200
        assert client.get("/healthz").status_code == 200
    assert client.get("/api/v1/users/", headers=bearer(admin["access_token"])).status_code == 200
    # Each limited route keeps its own count: sign-in being used up leaves sign-up and refresh alone.
    register(client)
    assert client.post(REFRESH, headers=bearer(user["refresh_token"])).status_code == 200
    assert client.post("/api/v1/auth/logout", headers=token).status_code == 200


def test_the_limit_is_per_client_address(client):
    user = register(client)["user"]
    login = {"email": user["email"], "password": PASSWORD}
    for _ in range(3):
        client.post(LOGIN, json=login)
    limited(client.post(LOGIN, json=login))
    other = client.post(LOGIN, json=login, environ_base={"REMOTE_ADDR": "203.0.113.7"})
    assert other.status_code == 200


def test_a_forged_forwarded_for_header_does_not_reset_the_count(client):
    # With no trusted proxy configured, X-Forwarded-For is the client's word, not its address.
    user = register(client)["user"]
    login = {"email": user["email"], "password": PASSWORD}
    for n in range(3):
        client.post(LOGIN, json=login, headers={"X-Forwarded-For": f"198.51.100.{n}"})
    limited(client.post(LOGIN, json=login, headers={"X-Forwarded-For": "198.51.100.99"}))


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_client(app_factory):
    client = app_factory(AUTH_RATE_LIMIT=LIMIT, TRUSTED_PROXIES=1).test_client()
    user = register(client)["user"]
    login = {"email": user["email"], "password": PASSWORD}
    for _ in range(3):
        client.post(LOGIN, json=login, headers={"X-Forwarded-For": "198.51.100.1"})
    limited(client.post(LOGIN, json=login, headers={"X-Forwarded-For": "198.51.100.1"}))
    assert client.post(LOGIN, json=login, headers={"X-Forwarded-For": "198.51.100.2"}).status_code == 200


def test_limit_comes_from_throttle_settings():
    from streampay.config import load

    assert load({"THROTTLE_TTL": "30", "THROTTLE_LIMIT": "5"})["AUTH_RATE_LIMIT"] == "5 per 30 second"
    assert load({})["AUTH_RATE_LIMIT"] == "10 per 60 second"
