"""A user's own profile, and what admins may see and change."""

from __future__ import annotations

import json
import uuid
from http import HTTPStatus

import pytest

from tests.conftest import PASSWORD, bearer, register

ME = "/api/v1/users/me"
USERS = "/api/v1/users/"
LOGIN = "/api/v1/auth/login"
NEW_PASSWORD = "battery-staple-42"


@pytest.fixture
def app(app_factory):
    # These tests sign up and in more often than the production rate limit allows.
    return app_factory(AUTH_RATE_LIMIT="1000 per 60 second")


@pytest.fixture
def admin(make_admin) -> dict:
    return make_admin()


def error_of(reply, code: int) -> dict:
    assert reply.status_code == code, reply.get_data(as_text=True)
    body = reply.json
    assert {"code", "status", "error", "message"} <= set(body) <= {"code", "status", "error", "message", "errors"}
    assert body["code"] == code
    assert body["status"] == HTTPStatus(code).phrase
    assert body["message"]
    return body


def pagination(reply) -> dict:
    return json.loads(reply.headers["X-Pagination"])


def listed(client, admin, **query) -> list[str]:
    reply = client.get(USERS, query_string={"page_size": 100, **query}, headers=bearer(admin["access_token"]))
    assert reply.status_code == 200, reply.json
    return sorted(u["username"] for u in reply.json)


# --- your own profile -----------------------------------------------------------------------------------------


def test_me_is_the_signed_in_user(client):
    user = register(client, role="creator")
    reply = client.get(ME, headers=bearer(user["access_token"]))
    assert reply.status_code == 200
    assert reply.json == client.get("/api/v1/auth/profile", headers=bearer(user["access_token"])).json
    assert reply.json["id"] == user["user"]["id"]
    assert reply.json["role"] == "creator"


def test_me_needs_a_token(client):
    error_of(client.get(ME), 401)
    error_of(client.patch(ME, json={"bio": "hi"}), 401)


def test_change_display_name_and_bio(client):
    user = register(client)
    token = bearer(user["access_token"])
    reply = client.patch(ME, json={"display_name": "Alice A.", "bio": "Films about birds."}, headers=token)
    assert reply.status_code == 200, reply.json
    assert reply.json["display_name"] == "Alice A."
    assert reply.json["bio"] == "Films about birds."
    assert client.get(ME, headers=token).json["bio"] == "Films about birds."
    # Each field can be cleared again.
    reply = client.patch(ME, json={"display_name": None, "bio": None}, headers=token)
    assert reply.json["display_name"] is None
    assert reply.json["bio"] is None


def test_a_patch_changes_only_what_it_names(client):
    user = register(client)
    token = bearer(user["access_token"])
    client.patch(ME, json={"display_name": "Alice", "bio": "Old bio"}, headers=token)
    reply = client.patch(ME, json={"bio": "New bio"}, headers=token)
    assert reply.json["display_name"] == "Alice"
    assert reply.json["username"] == user["user"]["username"]
    assert reply.json["email"] == user["user"]["email"]


def test_change_username(client):
    user = register(client)
    token = bearer(user["access_token"])
    reply = client.patch(ME, json={"username": "New.Name_1"}, headers=token)
    assert reply.status_code == 200, reply.json
    assert reply.json["username"] == "new.name_1"
    assert client.get(ME, headers=token).json["username"] == "new.name_1"


def test_username_taken_by_someone_else_is_409(client):
    alice = register(client, username="alice")
    bob = register(client)
    reply = error_of(client.patch(ME, json={"username": "ALICE"}, headers=bearer(bob["access_token"])), 409)
    assert "username" in reply["errors"]
    assert client.get(ME, headers=bearer(bob["access_token"])).json["username"] == bob["user"]["username"]
    # Keeping your own name is no conflict.
    own = client.patch(ME, json={"username": "Alice"}, headers=bearer(alice["access_token"]))
    assert own.status_code == 200


@pytest.mark.parametrize(
    "changes",
    [
        {"username": "ab"},
        {"username": "a" * 33},
        {"username": "has space"},
        {"display_name": ""},
        {"display_name": "d" * 65},
        {"bio": "b" * 501},
        {"bio": 42},
        {"bio": "nul\x00byte"},
        {"email": "new@example.com"},
        {"role": "admin"},
        {"is_active": False},
    ],
)
def test_bad_or_forbidden_profile_changes_are_422(client, changes):
    user = register(client)
    token = bearer(user["access_token"])
    before = client.get(ME, headers=token).json
    reply = error_of(client.patch(ME, json=changes, headers=token), 422)
    assert set(reply["errors"]["json"]) == set(changes)
    assert client.get(ME, headers=token).json == before


def test_profile_patch_malformed_json_is_400(client):
    user = register(client)
    reply = client.patch(ME, data="{bio:", content_type="application/json", headers=bearer(user["access_token"]))
    error_of(reply, 400)


def test_change_password_with_the_current_one(client):
    user = register(client)
    email = user["user"]["email"]
    reply = client.patch(
        ME, json={"password": NEW_PASSWORD, "current_password": PASSWORD}, headers=bearer(user["access_token"])
    )
    assert reply.status_code == 200, reply.json
    assert "password" not in reply.json
    error_of(client.post(LOGIN, json={"email": email, "password": PASSWORD}), 401)
    assert client.post(LOGIN, json={"email": email, "password": NEW_PASSWORD}).status_code == 200


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"password": NEW_PASSWORD}, "current_password"),
        ({"password": NEW_PASSWORD, "current_password": "wrong-pass-1"}, "current_password"),
        ({"password": NEW_PASSWORD, "current_password": ""}, "current_password"),
        ({"password": "short1", "current_password": PASSWORD}, "password"),
        ({"password": "nodigitshere", "current_password": PASSWORD}, "password"),
        ({"current_password": PASSWORD}, "password"),
    ],
)
def test_password_change_refused_keeps_the_old_password(client, changes, field):
    user = register(client)
    email = user["user"]["email"]
    reply = error_of(client.patch(ME, json=changes, headers=bearer(user["access_token"])), 422)
    assert field in reply["errors"]
    assert client.post(LOGIN, json={"email": email, "password": PASSWORD}).status_code == 200
    error_of(client.post(LOGIN, json={"email": email, "password": changes.get("password", "-")}), 401)


def test_new_password_may_not_contain_the_username(client):
    user = register(client, username="wonder")
    changes = {"password": "wonder-2024", "current_password": PASSWORD}
    reply = error_of(client.patch(ME, json=changes, headers=bearer(user["access_token"])), 422)
    assert "password" in reply["errors"]


def test_a_refused_patch_changes_nothing_it_named(client):
    """Username and bio are valid, the password change is not: the whole patch is refused."""
    user = register(client)
    token = bearer(user["access_token"])
    changes = {"username": "renamed", "bio": "new", "password": NEW_PASSWORD, "current_password": "wrong-pass-1"}
    error_of(client.patch(ME, json=changes, headers=token), 422)
    after = client.get(ME, headers=token).json
    assert after["username"] == user["user"]["username"]
    assert after["bio"] is None


# --- the admin list -------------------------------------------------------------------------------------------


def test_list_is_paginated_with_x_pagination(client, admin):
    for _ in range(4):
        register(client)  # five accounts with the admin
    token = bearer(admin["access_token"])

    first = client.get(USERS, query_string={"page": 1, "page_size": 2}, headers=token)
    assert first.status_code == 200
    assert len(first.json) == 2
    assert pagination(first) == {
        "total": 5,
        "total_pages": 3,
        "first_page": 1,
        "last_page": 3,
        "page": 1,
        "next_page": 2,
    }
    middle = client.get(USERS, query_string={"page": 2, "page_size": 2}, headers=token)
    assert pagination(middle)["previous_page"] == 1 and pagination(middle)["next_page"] == 3
    last = client.get(USERS, query_string={"page": 3, "page_size": 2}, headers=token)
    assert len(last.json) == 1
    assert "next_page" not in pagination(last)

    # The pages partition the list: every account exactly once, newest first.
    ids = [u["id"] for page in (first, middle, last) for u in page.json]
    everyone = client.get(USERS, query_string={"page_size": 100}, headers=token).json
    assert ids == [u["id"] for u in everyone]
    assert len(set(ids)) == 5
    created = [u["created_at"] for u in everyone]
    assert created == sorted(created, reverse=True)


def test_list_defaults_to_ten_per_page(client, admin):
    for _ in range(11):
        register(client)
    reply = client.get(USERS, headers=bearer(admin["access_token"]))
    assert len(reply.json) == 10
    assert pagination(reply)["total"] == 12
    assert pagination(reply)["total_pages"] == 2


def test_page_past_the_end_is_empty(client, admin):
    reply = client.get(USERS, query_string={"page": 5}, headers=bearer(admin["access_token"]))
    assert reply.status_code == 200
    assert reply.json == []
    assert pagination(reply)["total"] == 1


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"page": 0}, "page"),
        ({"page": -1}, "page"),
        ({"page": "two"}, "page"),
        ({"page_size": 0}, "page_size"),
        ({"page_size": 101}, "page_size"),
        ({"page_size": 10000}, "page_size"),
        ({"page_size": "1.5"}, "page_size"),
        ({"role": "root"}, "role"),
        ({"is_active": "maybe"}, "is_active"),
        ({"search": "s" * 101}, "search"),
        ({"search": "a\x00b"}, "search"),
    ],
)
def test_bad_list_parameters_are_422(client, admin, query, field):
    reply = error_of(client.get(USERS, query_string=query, headers=bearer(admin["access_token"])), 422)
    assert field in reply["errors"]["query"]


def test_search_is_case_insensitive_on_email_and_username(client, admin):
    register(client, email="carol@films.example", username="carol")
    register(client, email="dave@example.com", username="dave-in-films")
    register(client, email="erin@example.com", username="erin")
    assert listed(client, admin, search="CAROL") == ["carol"]
    assert listed(client, admin, search="Films") == ["carol", "dave-in-films"]
    assert listed(client, admin, search="  erin  ") == ["erin"]
    assert listed(client, admin, search="nobody") == []


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("%", ["percent"]),
        ("per%cent", ["percent"]),
        ("_", ["under_score"]),
        ("under_score", ["under_score"]),
        ("'", ["o-brien"]),
        ("o'brien", ["o-brien"]),
        ("'; drop table users; --", []),
        ("\\", []),
    ],
)
def test_search_takes_like_metacharacters_literally(client, admin, search, expected):
    # Each decoy would match too if %, _ or ' were read as SQL rather than as text.
    register(client, email="per%cent@example.com", username="percent")
    register(client, email="perXcent@example.com", username="percent-decoy")
    register(client, email="under@example.com", username="under_score")
    register(client, email="underX@example.com", username="underxscore")
    register(client, email="o'brien@example.com", username="o-brien")
    register(client, email="obrien@example.com", username="obrien")
    assert listed(client, admin, search=search) == expected
    assert len(listed(client, admin)) == 7  # and the table is still there


def test_role_and_active_filters(client, admin):
    register(client, role="creator", username="maker1")
    register(client, role="creator", username="maker2")
    viewer = register(client, role="viewer", username="watcher")
    assert listed(client, admin, role="creator") == ["maker1", "maker2"]
    assert listed(client, admin, role="viewer") == ["watcher"]
    assert listed(client, admin, role="admin") == [admin["user"]["username"]]
    client.patch(f"{USERS}{viewer['user']['id']}", json={"is_active": False}, headers=bearer(admin["access_token"]))
    assert listed(client, admin, is_active="false") == ["watcher"]
    assert "watcher" not in listed(client, admin, is_active="true")
    assert listed(client, admin, role="creator", search="ker2") == ["maker2"]  # not "2": emails are numbered


# --- what only admins may do ----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["viewer", "creator"])
def test_non_admins_get_403(client, role):
    user = register(client, role=role)
    other = register(client)
    token = bearer(user["access_token"])
    for reply in (
        client.get(USERS, headers=token),
        client.get(f"{USERS}{other['user']['id']}", headers=token),
        client.patch(f"{USERS}{other['user']['id']}", json={"is_active": False}, headers=token),
        client.patch(f"{USERS}{user['user']['id']}", json={"role": "admin"}, headers=token),
    ):
        error_of(reply, 403)
    assert client.get(ME, headers=token).json["role"] == role


def test_admin_reads_one_user(client, admin):
    user = register(client)
    reply = client.get(f"{USERS}{user['user']['id']}", headers=bearer(admin["access_token"]))
    assert reply.status_code == 200
    assert reply.json["email"] == user["user"]["email"]


def test_admin_changes_a_role_which_takes_effect_at_once(client, admin):
    user = register(client)
    url = f"{USERS}{user['user']['id']}"
    token = bearer(user["access_token"])

    reply = client.patch(url, json={"role": "creator"}, headers=bearer(admin["access_token"]))
    assert reply.status_code == 200
    assert reply.json["role"] == "creator"
    assert client.get(ME, headers=token).json["role"] == "creator"

    # Promoted to admin, the same token now opens the admin list; demoted again, it no longer does.
    client.patch(url, json={"role": "admin"}, headers=bearer(admin["access_token"]))
    assert client.get(USERS, headers=token).status_code == 200
    client.patch(url, json={"role": "viewer"}, headers=bearer(admin["access_token"]))
    error_of(client.get(USERS, headers=token), 403)


def test_admin_deactivates_a_user(client, admin):
    user = register(client)
    reply = client.patch(
        f"{USERS}{user['user']['id']}", json={"is_active": False}, headers=bearer(admin["access_token"])
    )
    assert reply.status_code == 200
    assert reply.json["is_active"] is False
    error_of(client.get(ME, headers=bearer(user["access_token"])), 401)
    error_of(client.post(LOGIN, json={"email": user["user"]["email"], "password": PASSWORD}), 403)


def test_an_admin_can_demote_another_admin(client, admin, make_admin):
    other = make_admin()
    reply = client.patch(
        f"{USERS}{other['user']['id']}", json={"role": "creator"}, headers=bearer(admin["access_token"])
    )
    assert reply.status_code == 200
    error_of(client.get(USERS, headers=bearer(other["access_token"])), 403)


@pytest.mark.parametrize("changes", [{"role": "viewer"}, {"role": "creator"}, {"is_active": False}])
def test_admin_cannot_demote_or_deactivate_self(client, admin, changes):
    url = f"{USERS}{admin['user']['id']}"
    token = bearer(admin["access_token"])
    error_of(client.patch(url, json=changes, headers=token), 409)
    me = client.get(ME, headers=token)
    assert me.json["role"] == "admin"
    assert me.json["is_active"] is True


def test_admin_may_patch_self_without_demotion(client, admin):
    reply = client.patch(
        f"{USERS}{admin['user']['id']}",
        json={"role": "admin", "is_active": True},
        headers=bearer(admin["access_token"]),
    )
    assert reply.status_code == 200


@pytest.mark.parametrize("method", ["GET", "PATCH"])
def test_unknown_id_is_404(client, admin, method):
    error_of(
        client.open(
            f"{USERS}{uuid.uuid4()}", method=method, json={"role": "viewer"}, headers=bearer(admin["access_token"])
        ),
        404,
    )


@pytest.mark.parametrize("bad_id", ["42", "not-a-uuid", "00000000-0000-0000-0000-00000000000g", "'%20or%201=1"])
@pytest.mark.parametrize("method", ["GET", "PATCH"])
def test_malformed_id_is_404(client, admin, method, bad_id):
    error_of(
        client.open(f"{USERS}{bad_id}", method=method, json={"role": "viewer"}, headers=bearer(admin["access_token"])),
        404,
    )


@pytest.mark.parametrize(
    "changes",
    [{"role": "root"}, {"is_active": "nope"}, {"email": "x@example.com"}, {"password": "whatever-123"}],
)
def test_bad_admin_changes_are_422(client, admin, changes):
    user = register(client)
    url = f"{USERS}{user['user']['id']}"
    reply = error_of(client.patch(url, json=changes, headers=bearer(admin["access_token"])), 422)
    assert set(reply["errors"]["json"]) == set(changes)
    after = client.get(url, headers=bearer(admin["access_token"])).json
    assert (after["role"], after["is_active"], after["email"]) == ("viewer", True, user["user"]["email"])
    assert client.post(LOGIN, json={"email": user["user"]["email"], "password": PASSWORD}).status_code == 200
