"""Mail people asked for, through a real local SMTP server (aiosmtpd); each kind can be turned off."""

from __future__ import annotations

import json
import logging
import socket
from email import message_from_bytes
from email.message import Message

import pytest
from aiosmtpd.controller import Controller

from tests.conftest import bearer, register
from tests.content.conftest import media_files, media_root, ready_item, run_jobs  # noqa: F401 (fixtures)
from tests.stellar.conftest import XLM, custody, custody_funding, horizon, make_creator, stellar_app  # noqa: F401
from tests.streaming.conftest import FakeClock, Player, serve


class Inbox:
    def __init__(self):
        self.messages: list[Message] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.messages.append(message_from_bytes(envelope.original_content))
        return "250 OK"

    def to(self, address: str) -> list[Message]:
        return [m for m in self.messages if m["To"] == address]


@pytest.fixture
def smtp():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": port, "SMTP_STARTTLS": False}
    controller.stop()


def body(message: Message) -> str:
    return message.get_payload(decode=True).decode()


def test_low_balance_mail_and_its_opt_out(app_factory, smtp, media_root, media_files):  # noqa: F811
    inbox, settings = smtp
    clock = FakeClock()
    app = app_factory(MEDIA_ROOT=media_root, BALANCE_LOW_SECONDS=120, RATELIMIT_ENABLED=False, **settings)
    app.extensions["streampay.clock"] = clock
    client, runner = app.test_client(), app.test_cli_runner()
    movie = ready_item(app, client, register(client, role="creator"), media_files["feature"], price_per_second="0.01")
    mailed, quiet = register(client), register(client)
    off = client.patch(
        "/api/v1/users/me", json={"email_notifications": {"balance_low": False}}, headers=bearer(quiet["access_token"])
    )
    assert off.status_code == 200
    assert off.json["email_notifications"] == {"balance_low": False, "payout_sent": True, "payout_refused": True}
    with serve(app) as url:
        for viewer in (mailed, quiet):
            email = viewer["user"]["email"]
            assert runner.invoke(args=["wallet", "credit", email, "0.5", "--reason", "trial"]).exit_code == 0
            player = Player(url, viewer["access_token"])
            session_id = player.call("startStream", content_id=movie["id"])["data"]["session_id"]
            player.call("stopStream", session_id=session_id)
            player.close()
    run_jobs(app)
    run_jobs(app)
    [letter] = inbox.to(mailed["user"]["email"])
    assert letter["Subject"] == "Your StreamPay balance is running low" and "0.5000000" in body(letter)
    assert inbox.to(quiet["user"]["email"]) == []


def test_payout_sent_and_refused_mail_says_what_to_fix(stellar_app, horizon, smtp):  # noqa: F811
    inbox, settings = smtp
    app = stellar_app(**settings)
    client, runner = app.test_client(), app.test_cli_runner()
    paid, _ = make_creator(app, client, horizon, 3 * XLM)
    missing, _ = make_creator(app, client, horizon, 2 * XLM, funded=False)
    summary = json.loads(runner.invoke(args=["payouts", "run"]).output.splitlines()[-1])
    assert summary["paid"] == 1
    run_jobs(app)
    [sent] = inbox.to(paid["user"]["email"])
    assert sent["Subject"] == "Payout sent: 3.0000000" and horizon.applied[0] in body(sent)
    [refused] = inbox.to(missing["user"]["email"])
    assert refused["Subject"] == "Payout not sent: 2.0000000"
    assert "op_no_destination" in body(refused) and "prove the address again" in body(refused)


def test_without_smtp_host_mail_goes_to_the_log(stellar_app, horizon, caplog):  # noqa: F811
    app = stellar_app()
    client, runner = app.test_client(), app.test_cli_runner()
    paid, _ = make_creator(app, client, horizon, 3 * XLM)
    assert runner.invoke(args=["payouts", "run"]).exit_code == 0
    with caplog.at_level(logging.INFO, logger="streampay.mail"):
        run_jobs(app)
    [line] = [r for r in caplog.records if r.name == "streampay.mail"]
    assert line.subject == "Payout sent: 3.0000000" and line.to == [paid["user"]["email"]]
