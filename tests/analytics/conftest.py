"""A platform with money moving through its real paths: deposits on the Horizon stand-in, streams on
a real WebSocket under the server's clock, payouts on the stand-in; analytics folded by the job."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from stellar_sdk import Keypair

from streampay.analytics.jobs import fold
from streampay.extensions import db
from streampay.jobs import enqueue
from tests.conftest import PASSWORD, bearer, register
from tests.content.conftest import media_files, media_root, ready_item, run_jobs  # noqa: F401 (fixtures)
from tests.stellar.conftest import XLM, custody, custody_funding, horizon, link_address, stellar_app  # noqa: F401
from tests.streaming.conftest import BILLING, FakeClock, Player, serve


@pytest.fixture
def feature(media_files) -> str:  # noqa: F811
    """An hour-long video: long enough to stream across checkpoints."""
    return media_files["feature"]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(at_ms(datetime(2027, 1, 31, 14, 58, tzinfo=UTC)))


def at_ms(moment: datetime) -> int:
    return int(moment.timestamp()) * 1000


@pytest.fixture
def app(stellar_app, media_root, clock):  # noqa: F811
    app = stellar_app(MEDIA_ROOT=media_root, **BILLING)
    app.extensions["streampay.clock"] = clock
    return app


def fold_now(app) -> None:
    """The fold as the clock dyno runs it: a job on the queue, taken by a real worker."""
    with app.app_context():
        enqueue(fold, queue_name="low")
        db.session.remove()
    run_jobs(app)


class Platform:
    """People and money on one app: creators publish, viewers deposit on-chain and watch."""

    def __init__(self, app, horizon, custody, feature: str, clock: FakeClock):  # noqa: F811
        self.app, self.horizon, self.custody, self.feature, self.clock = app, horizon, custody, feature, clock
        self.client, self.runner = app.test_client(), app.test_cli_runner()
        self.funder = Keypair.random()
        horizon.create_account(self.funder.public_key, balance_stroops=10_000 * XLM)

    def creator(self, *, payout_address: bool = False) -> dict:
        who = register(self.client, role="creator")
        if payout_address:
            key = Keypair.random()
            self.horizon.create_account(key.public_key, balance_stroops=XLM)
            link_address(self.client, who, key)
        return who

    def item(self, creator: dict, price: str, title: str) -> dict:
        return ready_item(self.app, self.client, creator, self.feature, price_per_second=price, title=title)

    def viewer(self, deposit_stroops: int) -> dict:
        who = register(self.client)
        memo = self.client.get("/api/v1/wallet", headers=bearer(who["access_token"])).json["deposit"]["memo"]
        self.horizon.pay_in(self.funder.public_key, self.custody.public_key, deposit_stroops, memo=int(memo))
        return who

    def scan_deposits(self) -> dict:
        result = self.runner.invoke(args=["deposits", "scan"])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    def watch(self, url: str, viewer: dict, item: dict, seconds: float, beat: float = 5) -> str:
        """Play `item` for `seconds` of server time, heartbeating every `beat`, then stop; the session id."""
        player = Player(url, viewer["access_token"])
        session_id = player.call("startStream", content_id=item["id"])["data"]["session_id"]
        left = seconds
        while left > beat:
            self.clock.advance(beat)
            left -= beat
            assert player.call("heartbeat", session_id=session_id)["event"] == "heartbeat"
        self.clock.advance(left)
        assert player.call("stopStream", session_id=session_id)["data"]["success"] is True
        player.close()
        return session_id

    def admin(self) -> dict:
        """An admin made the only way admins are made: the CLI."""
        name = f"admin{Keypair.random().public_key[1:9].lower()}"
        email = f"{name}@example.com"
        args = ["users", "create", email, "--username", name, "--password", PASSWORD, "--role", "admin"]
        made = self.runner.invoke(args=args)
        assert made.exit_code == 0, made.output
        reply = self.client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert reply.status_code == 200, reply.json
        return reply.json

    def get(self, who: dict, path: str, **query):
        return self.client.get(f"/api/v1{path}", query_string=query, headers=bearer(who["access_token"]))


@pytest.fixture
def platform(app, horizon, custody, feature, clock):  # noqa: F811
    return Platform(app, horizon, custody, feature, clock)


__all__ = ["Platform", "fold_now", "serve", "at_ms"]
