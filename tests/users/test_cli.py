"""`flask users create` and `flask users list`, as an operator runs them."""

from __future__ import annotations

import pytest

from tests.conftest import PASSWORD


def create(runner, email: str, username: str, password: str = PASSWORD, *extra: str):
    return runner.invoke(args=["users", "create", email, "--username", username, "--password", password, *extra])


def listing(runner, *extra: str) -> list[list[str]]:
    result = runner.invoke(args=["users", "list", *extra])
    assert result.exit_code == 0, result.output
    return [line.split() for line in result.output.splitlines() if line.strip()]


@pytest.mark.parametrize("role", ["viewer", "creator", "admin"])
def test_create_each_role_and_sign_in(runner, client, role):
    result = create(runner, "Ops@Example.com", "Ops", PASSWORD, "--role", role)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"created {role} ops@example.com (")

    reply = client.post("/api/v1/auth/login", json={"email": "ops@example.com", "password": PASSWORD})
    assert reply.status_code == 200
    assert reply.json["user"]["role"] == role
    assert reply.json["user"]["username"] == "ops"
    assert reply.json["user"]["id"] in result.output


def test_role_defaults_to_viewer(runner):
    result = create(runner, "plain@example.com", "plain")
    assert result.exit_code == 0, result.output
    assert "created viewer plain@example.com" in result.output


def test_password_can_be_typed_at_the_prompt(runner, client):
    result = runner.invoke(
        args=["users", "create", "typed@example.com", "--username", "typed"], input=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output  # hidden input is not echoed
    assert (
        client.post("/api/v1/auth/login", json={"email": "typed@example.com", "password": PASSWORD}).status_code == 200
    )


def test_prompted_passwords_must_match(runner):
    result = runner.invoke(
        args=["users", "create", "typo@example.com", "--username", "typo"], input=f"{PASSWORD}\nsomething-else-1\n"
    )
    assert result.exit_code != 0
    assert listing(runner) == []


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("short1", "8 to 128 characters"),
        ("lettersonly", "one letter and one digit"),
        ("operator-99", "Too easy to guess"),  # contains the username
    ],
)
def test_weak_password_exits_non_zero_with_the_reason(runner, password, why):
    result = create(runner, "weak@example.com", "operator", password)
    assert result.exit_code == 1
    assert "The password is too weak." in result.output
    assert why in result.output
    assert isinstance(result.exception, SystemExit)  # a clean exit with a message, not a crash
    assert listing(runner) == []


@pytest.mark.parametrize(
    ("email", "username", "field"),
    [
        ("taken@example.com", "fresh", "email: Already registered."),
        ("TAKEN@example.com", "fresh", "email: Already registered."),
        ("fresh@example.com", "taken", "username: Already taken."),
        ("fresh@example.com", "TAKEN", "username: Already taken."),
    ],
)
def test_duplicate_exits_non_zero_with_the_reason(runner, email, username, field):
    assert create(runner, "taken@example.com", "taken").exit_code == 0
    result = create(runner, email, username)
    assert result.exit_code == 1
    assert "already in use" in result.output
    assert field in result.output
    assert [row[1] for row in listing(runner)] == ["taken@example.com"]


@pytest.mark.parametrize(
    ("email", "username", "field"),
    [
        ("not-an-email", "okname", "email"),
        ("a" * 250 + "@example.com", "okname", "email"),
        ("ok@example.com", "x" * 33, "username"),
        ("ok@example.com", "has space", "username"),
        ("ok@example.com", "ab", "username"),
    ],
)
def test_invalid_email_or_username_exits_non_zero(runner, client, email, username, field):
    """The CLI keeps the API's rules: no account it makes is one that could never sign in."""
    result = create(runner, email, username)
    assert result.exit_code == 1, result.output
    assert f"{field}:" in result.output
    assert isinstance(result.exception, SystemExit)  # a clean exit with a message, not a crash
    assert listing(runner) == []


def test_unknown_role_is_a_usage_error(runner):
    result = create(runner, "root@example.com", "rooty", PASSWORD, "--role", "root")
    assert result.exit_code == 2
    assert "'root' is not one of 'viewer', 'creator', 'admin'" in result.output
    assert listing(runner) == []


def test_username_is_required(runner):
    result = runner.invoke(args=["users", "create", "nouser@example.com", "--password", PASSWORD])
    assert result.exit_code == 2
    assert "--username" in result.output


def test_list_shows_every_account_newest_first(runner, client):
    create(runner, "first@example.com", "first", PASSWORD, "--role", "admin")
    create(runner, "second@example.com", "second", PASSWORD, "--role", "creator")
    create(runner, "third@example.com", "third")
    rows = listing(runner)
    assert [row[1:] for row in rows] == [
        ["third@example.com", "third", "viewer", "active"],
        ["second@example.com", "second", "creator", "active"],
        ["first@example.com", "first", "admin", "active"],
    ]
    ids = [row[0] for row in rows]
    admin = client.post("/api/v1/auth/login", json={"email": "first@example.com", "password": PASSWORD}).json
    assert admin["user"]["id"] in ids


def test_list_by_role(runner):
    create(runner, "a@example.com", "admin1", PASSWORD, "--role", "admin")
    create(runner, "c1@example.com", "creator1", PASSWORD, "--role", "creator")
    create(runner, "c2@example.com", "creator2", PASSWORD, "--role", "creator")
    create(runner, "v@example.com", "viewer1")
    assert sorted(row[2] for row in listing(runner, "--role", "creator")) == ["creator1", "creator2"]
    assert [row[2] for row in listing(runner, "--role", "admin")] == ["admin1"]
    assert [row[2] for row in listing(runner, "--role", "viewer")] == ["viewer1"]
    bad = runner.invoke(args=["users", "list", "--role", "root"])
    assert bad.exit_code == 2


def test_list_marks_deactivated_accounts(runner, client, make_admin):
    admin = make_admin()
    create(runner, "gone@example.com", "gone")
    gone = next(row for row in listing(runner) if row[1] == "gone@example.com")
    reply = client.patch(
        f"/api/v1/users/{gone[0]}",
        json={"is_active": False},
        headers={"Authorization": f"Bearer {admin['access_token']}"},
    )
    assert reply.status_code == 200
    assert next(row for row in listing(runner) if row[1] == "gone@example.com")[-1] == "deactivated"


def test_list_is_empty_with_no_accounts(runner):
    assert listing(runner) == []


@pytest.mark.parametrize(
    ("email", "username", "password"),
    [
        ("bad\udcff@example.com", "bad", PASSWORD),
        ("ok@example.com", "bad\udcff", PASSWORD),
        ("p@example.com", "p", "pw\udcff12345"),
    ],
    ids=["email", "username", "password"],
)
def test_create_refuses_arguments_that_are_not_text(runner, email, username, password):
    result = create(runner, email, username, password)
    assert result.exit_code == 1 and type(result.exception) is SystemExit, result.output
    assert "not text" in result.output
