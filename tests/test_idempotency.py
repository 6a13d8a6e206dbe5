"""Idempotency-Key on POSTs that create something: a retry gets the first response, never a second item."""

from __future__ import annotations

from datetime import timedelta

from streampay.dbtypes import utcnow
from streampay.extensions import db
from streampay.idempotency import IdempotencyKey
from tests.conftest import bearer, register
from tests.content.conftest import media_files, media_root  # noqa: F401 (fixtures)

HOOK = {"url": "http://127.0.0.1:9/hooks", "event_types": ["payout.paid"]}


def post_hook(client, who, body=HOOK, key="key-1"):
    return client.post("/api/v1/webhooks", json=body, headers={**bearer(who["access_token"]), "Idempotency-Key": key})


def test_a_retry_replays_the_first_response(client):
    creator = register(client, role="creator")
    first, again = post_hook(client, creator), post_hook(client, creator)
    assert first.status_code == again.status_code == 201
    assert again.json == first.json and again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert len(client.get("/api/v1/webhooks", headers=bearer(creator["access_token"])).json) == 1


def test_the_same_key_for_another_request_is_refused(client):
    creator = register(client, role="creator")
    assert post_hook(client, creator).status_code == 201
    other = post_hook(client, creator, {**HOOK, "event_types": ["session.ended"]})
    assert other.status_code == 422 and other.json["error"] == "idempotency_key_reused"


def test_keys_are_per_account_and_bad_input_keeps_nothing(client):
    one, two = register(client, role="creator"), register(client, role="creator")
    assert post_hook(client, one).json["id"] != post_hook(client, two).json["id"]
    bad = {**HOOK, "event_types": ["nope"]}
    assert post_hook(client, one, bad, key="k2").status_code == 422
    retried = post_hook(client, one, bad, key="k2")
    assert retried.status_code == 422 and "Idempotent-Replayed" not in retried.headers


def test_a_key_past_its_lifetime_is_free_again(app_factory):
    client = app_factory(IDEMPOTENCY_KEY_HOURS=0).test_client()
    creator = register(client, role="creator")
    assert post_hook(client, creator).json["id"] != post_hook(client, creator).json["id"]


def test_an_upload_retried_with_its_key_makes_one_item(app_factory, media_root, media_files):  # noqa: F811
    client = app_factory(MEDIA_ROOT=media_root).test_client()
    creator = register(client, role="creator")

    def send(title: str):
        with open(media_files["video"], "rb") as f:
            form = {"title": title, "price_per_second": "0.0010000", "file": (f, "clip.mp4")}
            headers = {**bearer(creator["access_token"]), "Idempotency-Key": "upload-1"}
            return client.post("/api/v1/content/", data=form, headers=headers, content_type="multipart/form-data")

    first, again = send("A clip"), send("A clip")
    assert first.status_code == again.status_code == 201 and again.json["id"] == first.json["id"]
    assert send("Another clip").status_code == 422
    mine = client.get("/api/v1/content/", query_string={"page_size": 50}, headers=bearer(creator["access_token"]))
    assert [item["id"] for item in mine.json] == [first.json["id"]]


def test_an_admin_credit_retried_posts_once_and_a_debit_past_the_balance_says_why(client, make_admin):
    admin, viewer = make_admin(), register(client)
    headers = {**bearer(admin["access_token"]), "Idempotency-Key": "credit-1"}
    body = {"user_id": viewer["user"]["id"], "kind": "credit", "amount": "5.0000000", "reason": "welcome"}
    first = client.post("/api/v1/wallet/adjustments", json=body, headers=headers)
    again = client.post("/api/v1/wallet/adjustments", json=body, headers=headers)
    assert first.status_code == again.status_code == 201 and again.json == first.json
    assert client.get("/api/v1/wallet", headers=bearer(viewer["access_token"])).json["balance"] == "5.0000000"
    debit = {**body, "kind": "debit", "amount": "6.0000000"}
    refused = client.post("/api/v1/wallet/adjustments", json=debit, headers=bearer(admin["access_token"]))
    assert refused.status_code == 409 and refused.json["error"] == "insufficient_funds"
    viewer_try = client.post("/api/v1/wallet/adjustments", json=body, headers=bearer(viewer["access_token"]))
    assert viewer_try.status_code == 403 and viewer_try.json["error"] == "forbidden"


def test_a_key_whose_first_request_died_running_is_taken_over_later(app, client, make_admin):
    viewer, admin = register(client), make_admin()
    credit = {"user_id": viewer["user"]["id"], "kind": "credit", "amount": "5", "reason": "goodwill"}

    def post(body: dict):
        headers = {**bearer(admin["access_token"]), "Idempotency-Key": "c-1"}
        return client.post("/api/v1/wallet/adjustments", json=body, headers=headers)

    first = post(credit)
    assert first.status_code == 201, first.json

    def died_running(age: timedelta) -> None:
        """What a web process killed inside the request leaves: the claim, and no response."""
        with app.app_context():
            db.session.query(IdempotencyKey).update({"status_code": None, "body": None, "created_at": utcnow() - age})
            db.session.commit()

    died_running(timedelta(seconds=10))
    again = post(credit)
    assert again.status_code == 409 and again.json["error"] == "idempotency_key_in_use"
    died_running(timedelta(minutes=6))  # past IDEMPOTENCY_LOCK_SECONDS
    assert post({**credit, "amount": "6"}).status_code == 422  # still not a key for another request
    retried = post(credit)
    assert retried.status_code == 201 and retried.json["transaction_id"] == first.json["transaction_id"]
    assert retried.json["balance"] == "5.0000000"  # the ledger's own key: the credit landed once
    assert client.get("/api/v1/wallet", headers=bearer(viewer["access_token"])).json["balance"] == "5.0000000"
