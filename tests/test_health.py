from tests.conftest import bearer, register


def test_healthz_is_alive(client):
    reply = client.get("/healthz")
    assert reply.status_code == 200
    assert reply.json == {"status": "ok"}


def test_readyz_checks_database_and_redis(client):
    reply = client.get("/readyz")
    assert reply.status_code == 200
    assert reply.json["checks"] == {"database": "ok", "redis": "ok"}


def test_request_id_is_echoed_or_made(client):
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    made = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"}).headers["X-Request-ID"]
    assert made and " " not in made


def test_profile_round_trip(client):
    user = register(client)
    reply = client.get("/api/v1/auth/profile", headers=bearer(user["access_token"]))
    assert reply.status_code == 200
    assert reply.json["email"] == user["user"]["email"]
