"""A deposit on-chain, a paid stream, and a payout on-chain, on a local Stellar network.

Three shells in the repository, the last two with the settings the first one prints exported:

    .venv/bin/flask stellar sandbox                    # a local Horizon with a funded custody account
    .venv/bin/python wsgi.py                           # the server, on that network
    .venv/bin/flask seed && .venv/bin/python examples/deposit_and_payout.py

The demo viewer deposits 100 XLM to its wallet's muxed address (`flask stellar pay`, as a wallet
would) and the deposit scan credits it. The demo creator proves a payout address by SEP-10 and
publishes a 20-second track at 1 XLM a second; the viewer listens for 15 seconds; the payout run
pays the creator's earnings on the network, and the reconciliation finds the ledger and the
network agree. STREAMPAY_URL points it at another server (default http://127.0.0.1:3000). It
exits 0 when every step shows what it should, non-zero otherwise.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import requests
from simple_websocket import Client
from stellar_sdk import Keypair, TransactionEnvelope
from stream import API, BASE, call, to_stroops

ROOT = Path(__file__).resolve().parent.parent
DEMO_PASSWORD = "streampay-demo-1"  # noqa: S105 (the demo accounts of `flask seed`)


def api(method, path, token=None, **kwargs):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    reply = requests.request(method, API + path, headers=headers, timeout=30, **kwargs)
    if reply.status_code >= 400:
        sys.exit(f"{method} {path} answered {reply.status_code}: {reply.text}")
    return reply.json()


def flask(*args):
    """An operator's command, in this checkout (it uses the running server's Redis)."""
    print("$ flask", *args)
    done = subprocess.run([sys.executable, "-m", "flask", *args], cwd=ROOT, capture_output=True, text=True)  # noqa: S603
    print(done.stdout.strip())
    if done.returncode != 0:
        sys.exit(f"flask {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def sign_in(email):
    return api("POST", "/auth/login", json={"email": email, "password": DEMO_PASSWORD})["access_token"]


def deposit(viewer, amount):
    wallet = api("GET", "/wallet", viewer)
    if not wallet["deposit"]["muxed_address"]:
        sys.exit("the server has no custody account: start it with the settings `flask stellar sandbox` prints")
    flask("stellar", "pay", wallet["deposit"]["muxed_address"], amount)
    flask("deposits", "scan")
    after = api("GET", "/wallet", viewer)["balance"]
    print(f"viewer's wallet: {wallet['balance']} -> {after}")
    if to_stroops(after) - to_stroops(wallet["balance"]) != to_stroops(amount):
        sys.exit("the deposit was not credited")


def link_payout_address(creator):
    """Fund a new account, then prove it holds the key (SEP-10) so payouts may go there."""
    key = Keypair.random()
    flask("stellar", "fund", key.public_key)
    challenge = api("POST", "/stellar/auth/challenge", json={"account": key.public_key})
    envelope = TransactionEnvelope.from_xdr(challenge["transaction"], challenge["network_passphrase"])
    envelope.sign(key)
    linked = api("POST", "/stellar/auth/verify", creator, json={"transaction": envelope.to_xdr()})
    print(f"creator's payout address: {linked['account']} (linked: {linked['linked']})")
    return key.public_key


def make_track(path, seconds, rate=8000):
    """A WAV file of a 400 Hz tone, made with the standard library."""
    with wave.open(path, "wb") as track:
        track.setnchannels(1)
        track.setsampwidth(1)
        track.setframerate(rate)
        track.writeframes(bytes(108 + 2 * (n % 20) for n in range(rate * seconds)))


def publish_track(creator):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "track.wav")
        make_track(path, seconds=20)
        with open(path, "rb") as f:
            form = {"title": "A tone worth paying for", "category": "music", "price_per_second": "1.0000000"}
            item = api("POST", "/content/", creator, data=form, files={"file": ("track.wav", f, "audio/wav")})
    for _ in range(60):
        item = api("GET", f"/content/{item['id']}", creator)
        if item["status"] != "processing":
            break
        time.sleep(0.5)
    if item["status"] != "ready":
        sys.exit(f"the track did not become ready: {item['status']} {item['failure_reason']}")
    print(f"published {item['id']} at {item['price_per_second']} a second")
    return item


def listen(viewer, item, seconds):
    socket_url = BASE.replace("http", "ws", 1) + "/api/v1/streaming/ws"
    ws = Client.connect(socket_url, headers={"Authorization": f"Bearer {viewer}"})
    try:
        session = call(ws, "startStream", content_id=item["id"])
        for _ in range(seconds // 5):
            time.sleep(5)
            call(ws, "heartbeat", session_id=session["session_id"])
        stopped = call(ws, "stopStream", session_id=session["session_id"])
    finally:
        ws.close()
    print(f"listened {stopped['duration']} seconds for {stopped['charged']}")


def balance_of(address, token):
    balances = api("GET", f"/stellar/accounts/{address}/balances", token)["balances"]
    return next(b["balance"] for b in balances if b["asset_type"] == "native")


def payout(creator, address):
    earnings = api("GET", "/wallet", creator)["earnings"]
    before = balance_of(address, creator)
    summary = json.loads(flask("payouts", "run").splitlines()[-1])
    paid = [p for p in api("GET", "/payouts", creator) if p["destination"] == address and p["status"] == "paid"]
    after = balance_of(address, creator)
    print(f"creator's earnings {earnings}; on the network {before} -> {after}; run: {summary}")
    if not paid or to_stroops(after) - to_stroops(before) != to_stroops(earnings):
        sys.exit("the creator's earnings did not arrive on the network")
    print(f"paid in transaction {paid[0]['tx_hash']}")


def main():
    viewer, creator = sign_in("viewer@demo.streampay"), sign_in("creator@demo.streampay")
    deposit(viewer, "100")
    address = link_payout_address(creator)
    item = publish_track(creator)
    listen(viewer, item, seconds=15)
    payout(creator, address)
    flask("stellar", "reconcile")


if __name__ == "__main__":
    main()
