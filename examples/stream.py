"""A player that watches a seeded item for fifteen seconds, then stops and shows the wallet.

Run it beside `python wsgi.py` after `flask seed` and `flask wallet credit viewer@demo.streampay 10`.
STREAMPAY_URL points it at another server (default http://127.0.0.1:3000). It exits 0 when the
stream was billed and the wallet went down by exactly the charge, 1 otherwise.
"""

import json
import os
import sys
import time
import urllib.request

from simple_websocket import Client

BASE = os.environ.get("STREAMPAY_URL", "http://127.0.0.1:3000")
API = BASE + "/api/v1"


def api(path, body=None, token=None):
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(urllib.request.Request(API + path, data, headers)) as reply:  # noqa: S310
        return json.load(reply)


def call(ws, event, **data):
    """Send one event and wait for its reply, printing any push that arrives first."""
    ws.send(json.dumps({"event": event, "id": event, "data": data}))
    # The reply echoes the id (an `error` reply too); anything else is a push from the server.
    while (frame := json.loads(ws.receive(timeout=10) or "null")) and frame.get("id") != event:
        print("push:", frame)
    if not frame:
        sys.exit(f"no reply to {event}")
    if frame["event"] == "error" or "code" in frame["data"]:
        sys.exit(f"{event} failed: {frame['data']}")
    return frame["data"]


def main():
    token = api("/auth/login", {"email": "viewer@demo.streampay", "password": "streampay-demo-1"})["access_token"]
    item = api("/content/?search=harbour")[0]
    before = api("/wallet", token=token)["balance"]
    socket_url = BASE.replace("http", "ws", 1) + "/api/v1/streaming/ws"
    ws = Client.connect(socket_url, headers={"Authorization": f"Bearer {token}"})
    try:
        session = call(ws, "startStream", content_id=item["id"])
        print(session)
        for _ in range(3):
            time.sleep(5)
            print(call(ws, "heartbeat", session_id=session["session_id"]))
        stopped = call(ws, "stopStream", session_id=session["session_id"])
        print(stopped)
    finally:
        ws.close()
    wallet = api("/wallet", token=token)
    print(wallet)
    spent = to_stroops(before) - to_stroops(wallet["balance"])
    if spent <= 0 or spent != to_stroops(stopped["charged"]):
        sys.exit(f"the wallet went from {before} to {wallet['balance']}, the stop charged {stopped['charged']}")


def to_stroops(amount):
    """ "12.5000000" -> 125000000, without floats."""
    units, _, fraction = amount.partition(".")
    return int(units) * 10_000_000 + int(fraction.ljust(7, "0"))


if __name__ == "__main__":
    main()
