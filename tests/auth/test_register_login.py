"""Sign-up, sign-in and the profile, and every way a sign-up can be refused without leaving a trace."""

from __future__ import annotations

from http import HTTPStatus

import pytest

from tests.conftest import PASSWORD, bearer, register

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
PROFILE = "/api/v1/auth/profile"


@pytest.fixture
def app(app_factory):
    # Some tests here sign up more often than the production rate limit allows; test_rate_limit.py covers it.
    return app_factory(AUTH_RATE_LIMIT="1000 per 60 second")


def error_of(reply, code: int) -> dict:
    """The reply is the one error shape, with this status."""
    assert reply.status_code == code, reply.get_data(as_text=True)
    body = reply.json
    assert {"code", "status", "error", "message"} <= set(body) <= {"code", "status", "error", "message", "errors"}
    assert body["code"] == code
    assert body["status"] == HTTPStatus(code).phrase
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body.get("errors", {}), dict)
    return body


def emails(runner) -> list[str]:
    """Every account's email, as the operator's CLI lists them."""
    result = runner.invoke(args=["users", "list"])
    assert result.exit_code == 0, result.output
    return [line.split()[1] for line in result.output.splitlines() if line.strip()]


def body(**fields) -> dict:
    return {"email": "alice@example.com", "username": "alice", "password": PASSWORD, **fields}


# --- the happy paths ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["viewer", "creator"])
def test_register_signs_in_with_the_chosen_role(client, runner, role):
    reply = client.post(REGISTER, json=body(role=role, display_name="Alice A."))
    assert reply.status_code == 201, reply.json
    result = reply.json
    assert result["token_type"] == "Bearer"
    assert result["expires_in"] == 15 * 60
    assert result["access_token"] and result["refresh_token"]
    assert result["access_token"] != result["refresh_token"]
    user = result["user"]
    assert user["email"] == "alice@example.com"
    assert user["username"] == "alice"
    assert user["role"] == role
    assert user["display_name"] == "Alice A."
    assert user["is_active"] is True
    assert "password" not in user and "password_hash" not in user
    assert emails(runner) == ["alice@example.com"]


def test_role_defaults_to_viewer(client):
    reply = client.post(REGISTER, json={"email": "bob@example.com", "username": "bob", "password": PASSWORD})
    assert reply.status_code == 201
    assert reply.json["user"]["role"] == "viewer"


def test_email_and_username_are_stored_lowercase(client):
    reply = client.post(REGISTER, json=body(email="Alice@Example.COM", username="Alice"))
    assert reply.status_code == 201, reply.json
    assert reply.json["user"]["email"] == "alice@example.com"
    assert reply.json["user"]["username"] == "alice"
    # ...so the sign-in matches whatever case the user types.
    assert client.post(LOGIN, json={"email": "ALICE@example.com", "password": PASSWORD}).status_code == 200


def test_login_returns_a_fresh_pair_and_the_user(client):
    registered = register(client, role="creator")
    reply = client.post(LOGIN, json={"email": registered["user"]["email"], "password": PASSWORD})
    assert reply.status_code == 200
    assert reply.json["user"]["id"] == registered["user"]["id"]
    assert reply.json["user"]["role"] == "creator"
    assert reply.json["user"]["last_login_at"] is not None
    assert reply.json["access_token"] != registered["access_token"]
    assert reply.json["refresh_token"] != registered["refresh_token"]


def test_profile_is_the_signed_in_user(client):
    alice = register(client)
    bob = register(client)
    for who in (alice, bob):
        reply = client.get(PROFILE, headers=bearer(who["access_token"]))
        assert reply.status_code == 200
        assert reply.json["id"] == who["user"]["id"]
        assert reply.json["email"] == who["user"]["email"]


def test_profile_needs_a_token(client):
    reply = client.get(PROFILE)
    error_of(reply, 401)
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")


# --- sign-in failures -----------------------------------------------------------------------------------------


def test_wrong_password_and_unknown_email_look_the_same(client):
    user = register(client)["user"]
    wrong = error_of(client.post(LOGIN, json={"email": user["email"], "password": "not-it-123"}), 401)
    unknown = error_of(client.post(LOGIN, json={"email": "nobody@example.com", "password": PASSWORD}), 401)
    assert wrong["message"] == unknown["message"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"password": PASSWORD}, "email"),
        ({"email": "alice@example.com"}, "password"),
        ({"email": "alice@example.com", "password": ""}, "password"),
        ({"email": "not-an-email", "password": PASSWORD}, "email"),
        ({"email": "alice@example.com", "password": 12345678}, "password"),
        ({"email": "alice@example.com", "password": "x" * 129}, "password"),
        ({"email": "alice@example.com", "password": PASSWORD, "remember": True}, "remember"),
    ],
)
def test_login_bad_input_is_422(client, payload, field):
    reply = error_of(client.post(LOGIN, json=payload), 422)
    assert field in reply["errors"]["json"]


def test_login_malformed_json_is_400(client):
    reply = client.post(LOGIN, data='{"email": "alice@example.com",', content_type="application/json")
    error_of(reply, 400)


# --- sign-up failures: each one refused, and nothing written ----------------------------------------------------


def test_admin_role_is_refused(client, runner):
    reply = error_of(client.post(REGISTER, json=body(role="admin")), 422)
    assert "role" in reply["errors"]["json"]
    assert emails(runner) == []


def test_unknown_role_is_refused(client, runner):
    reply = error_of(client.post(REGISTER, json=body(role="superuser")), 422)
    assert "role" in reply["errors"]["json"]
    assert emails(runner) == []


@pytest.mark.parametrize(
    "raw",
    [
        '{"email": "alice@example.com", "username": "alice"',
        "{'email': 'alice@example.com'}",
        '{"email": "alice@example.com",}',
        "not json at all",
    ],
)
def test_malformed_json_is_400(client, runner, raw):
    body_ = error_of(client.post(REGISTER, data=raw, content_type="application/json"), 400)
    assert "json" in body_["errors"]
    assert emails(runner) == []


@pytest.mark.parametrize("raw", ["[]", '"alice"', "42", "null"])
def test_json_that_is_not_an_object_is_refused(client, runner, raw):
    reply = client.post(REGISTER, data=raw, content_type="application/json")
    error_of(reply, 422)
    assert emails(runner) == []


def test_no_body_lists_every_missing_field(client, runner):
    reply = error_of(client.post(REGISTER), 422)
    assert set(reply["errors"]["json"]) == {"email", "username", "password"}
    assert emails(runner) == []


@pytest.mark.parametrize("missing", ["email", "username", "password"])
def test_missing_field_is_named(client, runner, missing):
    payload = body()
    del payload[missing]
    reply = error_of(client.post(REGISTER, json=payload), 422)
    assert list(reply["errors"]["json"]) == [missing]
    assert emails(runner) == []


@pytest.mark.parametrize("extra", ["is_active", "id", "password_hash", "admin", "Role"])
def test_unknown_field_is_refused(client, runner, extra):
    reply = error_of(client.post(REGISTER, json=body(**{extra: True})), 422)
    assert list(reply["errors"]["json"]) == [extra]
    assert emails(runner) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email", 42),
        ("email", ["alice@example.com"]),
        ("email", None),
        ("username", 12345),
        ("username", {"name": "alice"}),
        ("password", 12345678),
        ("password", None),
        ("role", 1),
        ("display_name", False),
    ],
)
def test_wrong_types_are_refused(client, runner, field, value):
    reply = error_of(client.post(REGISTER, json=body(**{field: value})), 422)
    assert list(reply["errors"]["json"]) == [field]
    assert emails(runner) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email", "a" * 245 + "@example.com"),  # 257 characters: past the 254 an address may have
        ("username", "a" * 33),
        ("password", "a1" * 64 + "x"),  # 129 characters
        ("display_name", "d" * 65),
        ("display_name", ""),
    ],
)
def test_overlong_or_empty_strings_are_refused(client, runner, field, value):
    reply = error_of(client.post(REGISTER, json=body(**{field: value})), 422)
    assert list(reply["errors"]["json"]) == [field]
    assert emails(runner) == []


@pytest.mark.parametrize(
    "email",
    ["alice", "alice@", "@example.com", "alice@@example.com", "alice example@example.com", "alice@example..com", ""],
)
def test_invalid_email_is_refused(client, runner, email):
    reply = error_of(client.post(REGISTER, json=body(email=email)), 422)
    assert "email" in reply["errors"]["json"]
    assert emails(runner) == []


@pytest.mark.parametrize("username", ["al", "alice smith", "alice!", "ålice", "alice/1", "<script>"])
def test_invalid_username_is_refused(client, runner, username):
    reply = error_of(client.post(REGISTER, json=body(username=username)), 422)
    assert "username" in reply["errors"]["json"]
    assert emails(runner) == []


def test_nul_character_is_refused_not_a_server_error(client, runner):
    # PostgreSQL cannot store NUL; it must be bad input on every database, not a 500 on one.
    reply = error_of(client.post(REGISTER, json=body(display_name="Alice\x00")), 422)
    assert "display_name" in reply["errors"]["json"]
    assert emails(runner) == []


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("Ab1", "too short"),
        ("short1", "too short"),
        ("onlyletters", "no digit"),
        ("1234567890123", "no letter"),
        ("password1", "common"),
        ("xxalice123", "contains the username"),
        ("ALICE-rocks-9", "contains the username, in another case"),
        ("wonderland-7", "contains the email's local part"),
    ],
)
def test_weak_password_is_422_with_errors_password(client, runner, password, why):
    payload = body(email="wonderland@example.com", password=password)
    reply = error_of(client.post(REGISTER, json=payload), 422)
    assert list(reply["errors"]) == ["password"], why
    assert reply["errors"]["password"], why
    assert emails(runner) == []


def test_weak_password_lists_every_problem(client):
    reply = error_of(client.post(REGISTER, json=body(password="alice")), 422)
    assert len(reply["errors"]["password"]) == 3  # too short, no digit, contains the username


@pytest.mark.parametrize(
    ("first", "second", "field"),
    [
        (body(), body(username="someone-else"), "email"),
        (body(), body(email="ALICE@EXAMPLE.COM", username="someone-else"), "email"),
        (body(), body(email="other@example.com"), "username"),
        (body(), body(email="other@example.com", username="ALICE"), "username"),
    ],
)
def test_duplicates_are_409_whatever_the_case(client, runner, first, second, field):
    assert client.post(REGISTER, json=first).status_code == 201
    reply = error_of(client.post(REGISTER, json=second), 409)
    assert list(reply["errors"]) == [field]
    assert emails(runner) == ["alice@example.com"]
    # The first account is untouched: its password still signs in.
    assert client.post(LOGIN, json={"email": "alice@example.com", "password": PASSWORD}).status_code == 200


def test_duplicate_email_and_username_are_both_named(client):
    assert client.post(REGISTER, json=body()).status_code == 201
    reply = error_of(client.post(REGISTER, json=body(password="another-pass-1")), 409)
    assert set(reply["errors"]) == {"email", "username"}


def test_a_refused_sign_up_does_not_block_a_correct_retry(client, runner):
    error_of(client.post(REGISTER, json=body(password="weak")), 422)
    error_of(client.post(REGISTER, json=body(role="admin")), 422)
    assert client.post(REGISTER, json=body()).status_code == 201
    assert emails(runner) == ["alice@example.com"]
