"""Sign-outs hold after Redis loses everything: revocation lives in the database, checked with the user load."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from rq import SimpleWorker
from sqlalchemy import event

from streampay.auth.jobs import prune_tokens
from streampay.extensions import db, redis_client
from streampay.jobs import queue
from tests.auth.test_tokens import LOGOUT, PROFILE, login, refresh, refused, works
from tests.conftest import bearer, register


@pytest.fixture
def app(app_factory):
    return app_factory(AUTH_RATE_LIMIT="1000 per 60 second")


@pytest.fixture
def wipe_redis(app):
    def wipe() -> None:
        with app.app_context():
            redis_client().flushdb()

    return wipe


def test_a_signed_out_pair_stays_signed_out_after_a_redis_wipe(client, wipe_redis):
    user = register(client)
    assert client.post(LOGOUT, headers=bearer(user["access_token"])).status_code == 200
    wipe_redis()
    assert not works(client, user["access_token"])
    refused(refresh(client, user["refresh_token"]))
    refused(client.post(LOGOUT, headers=bearer(user["refresh_token"])))


def test_signing_out_with_the_refresh_token_revokes_the_access_token_too(client, wipe_redis):
    user = register(client)
    assert client.post(LOGOUT, headers=bearer(user["refresh_token"])).status_code == 200
    wipe_redis()
    assert not works(client, user["access_token"])


def test_a_spent_refresh_token_replayed_after_a_wipe_revokes_its_sign_in(client, wipe_redis):
    first = register(client)
    second = refresh(client, first["refresh_token"]).json
    wipe_redis()
    refused(refresh(client, first["refresh_token"]))  # spent before the wipe: a replay
    wipe_redis()
    assert not works(client, second["access_token"])
    refused(refresh(client, second["refresh_token"]))


def test_other_sign_ins_survive_a_sign_out_and_a_wipe(client, wipe_redis):
    phone = register(client)
    laptop = login(client, phone["user"]["email"]).json
    client.post(LOGOUT, headers=bearer(phone["access_token"]))
    wipe_redis()
    assert works(client, laptop["access_token"])
    assert refresh(client, laptop["refresh_token"]).status_code == 200


def test_a_deactivated_account_stays_out_after_a_wipe(client, make_admin, wipe_redis):
    admin, user = make_admin(), register(client)
    client.patch(
        f"/api/v1/users/{user['user']['id']}", json={"is_active": False}, headers=bearer(admin["access_token"])
    )
    wipe_redis()
    assert not works(client, user["access_token"])
    refused(refresh(client, user["refresh_token"]))


UPGRADE = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


def test_reactivating_an_account_does_not_revive_its_old_tokens(client, make_admin):
    """Deactivation revokes every sign-in of the account for good: after reactivation, only a new sign-in works."""
    admin, user = make_admin(), register(client)
    laptop = login(client, user["user"]["email"]).json
    url = f"/api/v1/users/{user['user']['id']}"
    for active in (False, True):
        reply = client.patch(url, json={"is_active": active}, headers=bearer(admin["access_token"]))
        assert reply.status_code == 200, reply.json

    for pair in (user, laptop):
        assert not works(client, pair["access_token"])
        refused(refresh(client, pair["refresh_token"]))
        socket = client.get("/api/v1/streaming/ws", headers={**UPGRADE, **bearer(pair["access_token"])})
        assert socket.status_code == 401, socket.json
    again = login(client, user["user"]["email"]).json
    assert works(client, again["access_token"])
    assert refresh(client, again["refresh_token"]).status_code == 200


def test_checking_a_token_costs_one_query(app, client):
    """The sign-in's revoked state comes back with the user: an authenticated request makes no extra round trip."""
    user = register(client)
    statements = []

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        assert client.get(PROFILE, headers=bearer(user["access_token"])).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", count)
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(reads) == 1, statements
    assert "auth_sign_ins" in reads[0] and "users" in reads[0]


def test_the_prune_job_forgets_only_what_no_token_can_use(app_factory):
    # The recent pair's refresh token must outlive the job and the refresh that follow it on a busy machine.
    app = app_factory(AUTH_RATE_LIMIT="1000 per 60 second", JWT_REFRESH_TOKEN_EXPIRES=timedelta(seconds=5))
    client = app.test_client()
    old = register(client)
    assert refresh(client, old["refresh_token"]).status_code == 200  # one spent token, one sign-in
    time.sleep(7.5)  # past the refresh lifetime and the prune's margin
    recent = register(client)
    with app.app_context():
        job = queue("low").enqueue(prune_tokens)
        SimpleWorker([queue("low")], connection=redis_client()).work(burst=True, logging_level="WARNING")
        assert job.return_value() == 2
    assert works(client, recent["access_token"])
    assert refresh(client, recent["refresh_token"]).status_code == 200
