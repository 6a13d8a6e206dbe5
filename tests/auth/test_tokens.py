"""Tokens: rotation with reuse detection, type checks, logout, expiry, forgery, and deactivated accounts."""

from __future__ import annotations

import base64
import json
import uuid
import warnings
from datetime import UTC, datetime, timedelta
from http import HTTPStatus

import jwt as pyjwt
import pytest
from flask_jwt_extended import create_access_token

from tests.conftest import PASSWORD, bearer, register

LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
PROFILE = "/api/v1/auth/profile"


@pytest.fixture
def app(app_factory):
    # Several sign-ins and refreshes per test; test_rate_limit.py covers the production limit.
    return app_factory(AUTH_RATE_LIMIT="1000 per 60 second")


def refused(reply) -> dict:
    """401 in the one error shape, with the challenge a client needs to know to sign in."""
    assert reply.status_code == 401, reply.get_data(as_text=True)
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    body = reply.json
    assert {"code", "status", "error", "message"} <= set(body) <= {"code", "status", "error", "message", "errors"}
    assert body["code"] == 401
    assert body["status"] == HTTPStatus.UNAUTHORIZED.phrase
    assert body["message"]
    return body


def works(client, access_token: str) -> bool:
    reply = client.get(PROFILE, headers=bearer(access_token))
    if reply.status_code == 200:
        return True
    refused(reply)
    return False


def refresh(client, refresh_token: str):
    return client.post(REFRESH, headers=bearer(refresh_token))


def login(client, email: str, password: str = PASSWORD):
    return client.post(LOGIN, json={"email": email, "password": password})


# --- rotation -------------------------------------------------------------------------------------------------


def test_refresh_returns_a_new_working_pair(client):
    first = register(client)
    reply = refresh(client, first["refresh_token"])
    assert reply.status_code == 200, reply.json
    second = reply.json
    assert set(second) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert second["token_type"] == "Bearer"
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert works(client, second["access_token"])
    third = refresh(client, second["refresh_token"])
    assert third.status_code == 200
    assert works(client, third.json["access_token"])


def test_a_refresh_token_works_once(client):
    first = register(client)
    assert refresh(client, first["refresh_token"]).status_code == 200
    refused(refresh(client, first["refresh_token"]))


def test_reusing_a_refresh_token_revokes_the_whole_family(client):
    first = register(client)
    second = refresh(client, first["refresh_token"]).json
    third = refresh(client, second["refresh_token"]).json
    assert works(client, third["access_token"])

    # Someone replays the oldest refresh token: whoever holds the family now is not to be trusted.
    refused(refresh(client, first["refresh_token"]))

    for pair in (first, second, third):
        assert not works(client, pair["access_token"])
    refused(refresh(client, third["refresh_token"]))


def test_reuse_spares_other_sign_ins(client):
    phone = register(client)
    laptop = login(client, phone["user"]["email"]).json
    assert refresh(client, phone["refresh_token"]).status_code == 200
    refused(refresh(client, phone["refresh_token"]))
    assert works(client, laptop["access_token"])
    assert refresh(client, laptop["refresh_token"]).status_code == 200


def test_refresh_with_an_access_token_is_refused(client):
    user = register(client)
    refused(refresh(client, user["access_token"]))
    # ...and it does not count as a use of the real refresh token.
    assert refresh(client, user["refresh_token"]).status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", PROFILE), ("GET", "/api/v1/users/me"), ("PATCH", "/api/v1/users/me")],
)
def test_a_refresh_token_is_not_an_access_token(client, method, path):
    user = register(client)
    refused(client.open(path, method=method, headers=bearer(user["refresh_token"]), json={"bio": "x"}))
    # The refresh token is still good for what it is for.
    assert refresh(client, user["refresh_token"]).status_code == 200


# --- logout ---------------------------------------------------------------------------------------------------


def test_logout_revokes_the_access_and_refresh_token_of_that_sign_in_only(client):
    phone = register(client)
    laptop = login(client, phone["user"]["email"]).json

    reply = client.post(LOGOUT, headers=bearer(phone["access_token"]))
    assert reply.status_code == 200
    assert reply.json == {"success": True}

    assert not works(client, phone["access_token"])
    refused(refresh(client, phone["refresh_token"]))
    refused(client.post(LOGOUT, headers=bearer(phone["access_token"])))

    assert works(client, laptop["access_token"])
    assert refresh(client, laptop["refresh_token"]).status_code == 200


def test_logout_with_the_refresh_token_also_revokes_the_access_token(client):
    user = register(client)
    assert client.post(LOGOUT, headers=bearer(user["refresh_token"])).status_code == 200
    assert not works(client, user["access_token"])
    refused(refresh(client, user["refresh_token"]))


def test_logout_reaches_tokens_issued_by_rotation(client):
    first = register(client)
    second = refresh(client, first["refresh_token"]).json
    assert client.post(LOGOUT, headers=bearer(first["access_token"])).status_code == 200
    assert not works(client, second["access_token"])
    refused(refresh(client, second["refresh_token"]))


def test_signing_in_again_after_logout_works(client):
    user = register(client)
    client.post(LOGOUT, headers=bearer(user["access_token"]))
    again = login(client, user["user"]["email"])
    assert again.status_code == 200
    assert works(client, again.json["access_token"])


def test_logout_needs_a_token(client):
    refused(client.post(LOGOUT))


# --- expired, forged and malformed tokens ---------------------------------------------------------------------


def test_expired_access_token_is_refused(app, client):
    user = register(client)
    with app.app_context():
        stale = create_access_token(
            identity=user["user"]["id"], expires_delta=timedelta(seconds=-1), additional_claims={"fam": "x"}
        )
    body = refused(client.get(PROFILE, headers=bearer(stale)))
    assert "expired" in body["message"]
    assert works(client, user["access_token"])


def test_access_token_lives_as_long_as_configured(app_factory):
    client = app_factory(JWT_ACCESS_TOKEN_EXPIRES=timedelta(minutes=7)).test_client()
    user = register(client)
    assert user["expires_in"] == 420
    claims = pyjwt.decode(user["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 420
    assert works(client, user["access_token"])


def test_an_expired_access_token_is_refused_and_its_refresh_token_trades_for_a_new_pair(app_factory):
    # Issued already past its expiry (exp has whole-second resolution: two seconds back is past), so nothing waits.
    user = register(app_factory(JWT_ACCESS_TOKEN_EXPIRES=timedelta(seconds=-2)).test_client())
    client = app_factory().test_client()
    body = refused(client.get(PROFILE, headers=bearer(user["access_token"])))
    assert "expired" in body["message"]
    # The refresh token outlives it and trades for a new pair.
    fresh = refresh(client, user["refresh_token"])
    assert fresh.status_code == 200
    assert works(client, fresh.json["access_token"])


def test_expired_refresh_token_is_refused(app_factory):
    client = app_factory(JWT_REFRESH_TOKEN_EXPIRES=timedelta(seconds=-1)).test_client()
    user = register(client)
    body = refused(refresh(client, user["refresh_token"]))
    assert "expired" in body["message"]


def _claims(user_id: str, kind: str = "access") -> dict:
    now = datetime.now(UTC)
    return {
        "sub": user_id,
        "type": kind,
        "jti": str(uuid.uuid4()),
        "fam": uuid.uuid4().hex,
        "fresh": False,
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(minutes=5),
    }


def _hs512_with_our_secret(claims: dict, ours: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pyjwt.warnings.InsecureKeyLengthWarning)  # the dev secret is short for HS512
        return pyjwt.encode(claims, ours, algorithm="HS512")


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(
            lambda claims, ours: pyjwt.encode(claims, "not-our-secret-" * 3, algorithm="HS256"), id="other-secret"
        ),
        pytest.param(lambda claims, ours: pyjwt.encode(claims, None, algorithm="none"), id="alg-none"),
        # Our own secret, but an algorithm we never issue: only HS256 is accepted.
        pytest.param(_hs512_with_our_secret, id="other-algorithm"),
    ],
)
def test_forged_access_token_is_refused(app, client, forge):
    user = register(client)
    forged = forge(_claims(user["user"]["id"]), app.config["JWT_SECRET_KEY"])
    refused(client.get(PROFILE, headers=bearer(forged)))


def test_tampered_token_is_refused(client, make_admin):
    """A genuine token with its subject swapped for an admin's keeps a signature that no longer matches."""
    admin = make_admin()
    user = register(client)
    header, payload, signature = user["access_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = admin["user"]["id"]
    swapped = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    refused(client.get("/api/v1/users/", headers=bearer(f"{header}.{swapped}.{signature}")))


def test_access_token_cannot_pass_as_refresh_by_its_claims(app, client):
    """The two kinds are signed with different secrets: relabelling an access token as refresh fails."""
    user = register(client)
    claims = _claims(user["user"]["id"], kind="refresh")
    relabelled = pyjwt.encode(claims, app.config["JWT_SECRET_KEY"], algorithm="HS256")
    refused(refresh(client, relabelled))


def test_token_for_a_user_that_does_not_exist_is_refused(app, client):
    register(client)
    with app.app_context():
        ghost = create_access_token(identity=str(uuid.uuid4()), additional_claims={"fam": "x"})
        nonsense = create_access_token(identity="not-a-uuid", additional_claims={"fam": "y"})
    refused(client.get(PROFILE, headers=bearer(ghost)))
    refused(client.get(PROFILE, headers=bearer(nonsense)))


@pytest.mark.parametrize(
    "header",
    [
        "Bearer garbage",
        "Bearer a.b.c",
        "Bearer eyJhbGciOiJIUzI1NiJ9.e30.",
        "Bearer ",
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "garbage",
        "Bearer " + "x" * 5000,
    ],
)
def test_garbage_token_is_refused(client, header):
    refused(client.get(PROFILE, headers={"Authorization": header}))


@pytest.mark.parametrize(("method", "path"), [("GET", PROFILE), ("POST", REFRESH), ("POST", LOGOUT)])
def test_missing_header_is_refused(client, method, path):
    body = refused(client.open(path, method=method))
    assert "Authorization" in body["message"]


def test_token_in_query_or_cookie_is_not_read(client):
    user = register(client)
    refused(client.get(PROFILE, query_string={"access_token": user["access_token"], "jwt": user["access_token"]}))
    client.set_cookie("access_token_cookie", user["access_token"])
    refused(client.get(PROFILE))


# --- deactivated accounts -------------------------------------------------------------------------------------


def test_deactivated_user_is_locked_out_at_once(client, make_admin):
    admin = make_admin()
    user = register(client)
    other_sign_in = login(client, user["user"]["email"]).json
    assert works(client, user["access_token"])

    reply = client.patch(
        f"/api/v1/users/{user['user']['id']}", json={"is_active": False}, headers=bearer(admin["access_token"])
    )
    assert reply.status_code == 200
    assert reply.json["is_active"] is False

    for pair in (user, other_sign_in):
        assert not works(client, pair["access_token"])
        refused(refresh(client, pair["refresh_token"]))
    blocked = login(client, user["user"]["email"])
    assert blocked.status_code == 403
    assert blocked.json["code"] == 403
    assert blocked.json["status"] == HTTPStatus.FORBIDDEN.phrase
    assert "deactivated" in blocked.json["message"]

    # Wrong password on a deactivated account says nothing about the account.
    assert login(client, user["user"]["email"], "wrong-pass-1").status_code == 401


def test_reactivated_user_can_sign_in_again(client, make_admin):
    admin = make_admin()
    user = register(client)
    url = f"/api/v1/users/{user['user']['id']}"
    client.patch(url, json={"is_active": False}, headers=bearer(admin["access_token"]))
    client.patch(url, json={"is_active": True}, headers=bearer(admin["access_token"]))
    again = login(client, user["user"]["email"])
    assert again.status_code == 200
    assert works(client, again.json["access_token"])
