"""The OpenAPI document is served and honest: every operation, fuzzed in-process, keeps to it."""

from __future__ import annotations

import os
import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from stellar_sdk import Keypair, Network

from streampay.sandbox.horizon import HorizonStandin
from tests.conftest import PASSWORD, bearer, empty_everything, make_app, register

DOC = "/api/openapi.json"
PUBLIC = [
    ("/api/v1/auth/register", "post"),
    ("/api/v1/auth/login", "post"),
    ("/healthz", "get"),
    ("/readyz", "get"),
]
SIGNED_IN = [
    ("/api/v1/auth/refresh", "post"),
    ("/api/v1/auth/logout", "post"),
    ("/api/v1/auth/profile", "get"),
    ("/api/v1/users/me", "get"),
    ("/api/v1/users/me", "patch"),
    ("/api/v1/users/", "get"),
    ("/api/v1/users/{user_id}", "patch"),
]


def test_document_is_served_with_bearer_scheme(client):
    reply = client.get(DOC)
    assert reply.status_code == 200
    assert reply.content_type == "application/json"
    doc = reply.json
    assert doc["openapi"].startswith("3.")
    assert doc["info"]["title"] == "StreamPay"
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    assert doc["security"] == [{"bearerAuth": []}]
    # Every error reply is documented as the one shape, so the fuzz run below holds each one to it.
    error = doc["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"code", "status", "error", "message"}
    assert set(error["properties"]) == {"code", "status", "error", "message", "errors"}
    for name, response in doc["components"]["responses"].items():
        if name.startswith("ERROR_"):
            assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
            assert "X-Request-ID" in response["headers"]
    assert "Retry-After" in doc["components"]["responses"]["ERROR_429"]["headers"]


def test_every_operation_lists_its_error_statuses(client):
    for path, item in client.get(DOC).json["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            statuses = set(operation["responses"])
            assert "default" not in statuses, (method, path)
            assert path == "/healthz" or "503" in statuses, (method, path)
            if operation.get("security") != []:
                assert "401" in statuses, (method, path)
            if "{" in path:
                assert "404" in statuses, (method, path)


def test_the_upload_form_is_documented(client):
    doc = client.get(DOC).json
    body = doc["paths"]["/api/v1/content/"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    upload = doc["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    assert {"file", "title", "price_per_second", "description", "category", "tags", "is_published"} <= set(
        upload["properties"]
    )
    assert upload["properties"]["file"]["format"] == "binary"


@pytest.mark.parametrize(("path", "method"), PUBLIC)
def test_public_operations_need_no_token(client, path, method):
    operation = client.get(DOC).json["paths"][path][method]
    assert operation["security"] == []


@pytest.mark.parametrize(("path", "method"), SIGNED_IN)
def test_other_operations_need_the_bearer_token(client, path, method):
    operation = client.get(DOC).json["paths"][path][method]
    assert operation.get("security", [{"bearerAuth": []}]) == [{"bearerAuth": []}]


def test_swagger_ui_is_served(client):
    reply = client.get("/api/docs")
    assert reply.status_code == 200
    assert reply.content_type.startswith("text/html")
    page = reply.get_data(as_text=True)
    assert "swagger-ui" in page
    assert DOC in page


# --- fuzzing the whole document -------------------------------------------------------------------------------

ADMIN_EMAIL = "fuzz-admin@example.com"
TARGET_EMAIL = "fuzz-target@example.com"
# Operations that spend or revoke the token they are given get a sign-in of their own each time.
SPENDS_TOKEN = {"/api/v1/auth/refresh": "refresh_token", "/api/v1/auth/logout": "access_token"}
# A signed-in admin reading these with well-formed parameters is always answered 200.
READS = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/api/v1/auth/profile"),
    ("GET", "/api/v1/users/me"),
    ("GET", "/api/v1/users/"),
}


class Fuzz:
    """One app for the whole run, an admin signed in and one other account; every table emptied afterwards."""

    def __init__(self, app):
        self.app = app
        self.client = app.test_client()
        runner = app.test_cli_runner()
        for email, username, role in ((ADMIN_EMAIL, "fuzzadmin", "admin"), (TARGET_EMAIL, "fuzztarget", "viewer")):
            result = runner.invoke(
                args=["users", "create", email, "--username", username, "--password", PASSWORD, "--role", role]
            )
            assert result.exit_code == 0, result.output
        self.admin_token = self.sign_in(ADMIN_EMAIL)["access_token"]
        self.target_id = self.sign_in(TARGET_EMAIL)["user"]["id"]

    def sign_in(self, email: str) -> dict:
        reply = self.client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert reply.status_code == 200, reply.json
        return reply.json

    def headers_for(self, case) -> dict:
        kind = SPENDS_TOKEN.get(case.operation.path)
        return bearer(self.sign_in(ADMIN_EMAIL)[kind] if kind else self.admin_token)

    def aim(self, case) -> None:
        """Point half of the well-formed user ids at a real account, so the found paths run too."""
        given = (case.path_parameters or {}).get("user_id")
        try:
            if uuid.UUID(str(given)).int % 2 == 0:
                case.path_parameters["user_id"] = self.target_id
        except ValueError:
            pass


@pytest.fixture(scope="module")
def fuzz(migrated, tmp_path_factory):
    custody = Keypair.random()
    # Tests never touch a real network: the Stellar operations talk to the local Horizon stand-in.
    with HorizonStandin(network_passphrase=Network.TESTNET_NETWORK_PASSPHRASE) as horizon:
        horizon.create_account(custody.public_key, balance_stroops=1_000_000 * 10**7)
        app = make_app(
            migrated,
            # The fuzzer signs up and in far more often than the production rate limit allows.
            AUTH_RATE_LIMIT="100000 per 60 second",
            MEDIA_ROOT=str(tmp_path_factory.mktemp("fuzz-media")),
            STELLAR_NETWORK="testnet",
            STELLAR_HORIZON_URL=horizon.url,
            STELLAR_PASSPHRASE=Network.TESTNET_NETWORK_PASSPHRASE,
            STELLAR_MASTER_SECRET_KEY=custody.secret,
            STELLAR_FRIENDBOT_URL=f"{horizon.url}/friendbot",
            STELLAR_TIMEOUT=5,
        )
        try:
            yield Fuzz(app)
        finally:
            empty_everything(app)


# Read from an app that never touches its database (the document needs none); the calls go to `fuzz.app`.
# schemathesis.pytest.from_fixture would read it from the fuzz app itself, but it relies on a pytest
# internal (Node._nodeid) that pytest 9 removed.
schema = schemathesis.openapi.from_wsgi(DOC, make_app("sqlite://"))


@schema.parametrize()
@settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "25")),
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_keeps_to_its_document(case, fuzz):
    fuzz.aim(case)
    response = case.call_and_validate(
        app=fuzz.app,
        headers=fuzz.headers_for(case),
        # Not response_headers_conformance: X-Pagination is JSON (flask-smorest's convention), which that
        # check reads as OpenAPI's comma-separated "simple" style and so always fails.
        checks=[not_a_server_error, status_code_conformance, response_schema_conformance, content_type_conformance],
    )
    mode = case.meta.generation.mode if case.meta is not None else None
    if mode is not None and mode.is_positive and (case.method, case.path) in READS:
        assert response.status_code == 200, (case.method, case.formatted_path, response.text)


def test_a_page_far_past_the_end_is_empty(client, make_admin):
    admin = make_admin()
    reply = client.get("/api/v1/users/", query_string={"page": 2**62}, headers=bearer(admin["access_token"]))
    assert reply.status_code == 200 and reply.json == []


def test_nul_in_content_search_is_bad_input(client):
    viewer = register(client)
    reply = client.get("/api/v1/content/", query_string={"search": "a\x00b"}, headers=bearer(viewer["access_token"]))
    assert reply.status_code == 422 and "search" in reply.json["errors"]["query"]


def test_lists_that_offer_csv_still_document_their_pagination_header(client):
    doc = client.get(DOC).json
    for path in ("/api/v1/payments", "/api/v1/payouts", "/api/v1/wallet/ledger"):
        ok = doc["paths"][path]["get"]["responses"]["200"]
        assert set(ok["content"]) == {"application/json", "text/csv"}, path
        assert ok["headers"]["X-Pagination"] == {"$ref": "#/components/headers/PAGINATION"}, path
