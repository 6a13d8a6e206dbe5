from streampay.extensions import upgrade
from tests.conftest import bearer, make_app, register


def test_healthz_is_alive(client):
    reply = client.get("/healthz")
    assert reply.status_code == 200
    assert reply.json == {"status": "ok"}


def test_readyz_checks_database_schema_and_redis(client):
    reply = client.get("/readyz")
    assert reply.status_code == 200
    assert reply.json["checks"] == {"database": "ok", "schema": "ok", "redis": "ok"}


def test_readyz_is_not_ready_on_a_schema_behind_the_migrations(tmp_path):
    app = make_app("sqlite:///" + str(tmp_path / "unmigrated.sqlite3"))
    reply = app.test_client().get("/readyz")
    assert reply.status_code == 503, reply.json
    assert reply.json["errors"]["checks"] == {"database": "ok", "schema": "behind", "redis": "ok"}
    with app.app_context():
        upgrade(revision="0001")
    assert app.test_client().get("/readyz").json["errors"]["checks"]["schema"] == "behind"
    with app.app_context():
        upgrade()
    assert app.test_client().get("/readyz").status_code == 200


def test_request_id_is_echoed_or_made(client):
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    made = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"}).headers["X-Request-ID"]
    assert made and " " not in made


def test_profile_round_trip(client):
    user = register(client)
    reply = client.get("/api/v1/auth/profile", headers=bearer(user["access_token"]))
    assert reply.status_code == 200
    assert reply.json["email"] == user["user"]["email"]
