"""The AsyncAPI document of the WebSocket is served, kept in docs/, and true to what the server sends."""

from __future__ import annotations

import json
from pathlib import Path

from jsonschema import Draft202012Validator

from tests.conftest import register

DOCS = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"


def test_the_document_is_served_and_matches_docs(client):
    reply = client.get("/api/asyncapi.json")
    assert reply.status_code == 200 and reply.content_type == "application/json"
    doc = reply.json
    assert doc["asyncapi"].startswith("3.") and doc["channels"]["player"]["address"] == "/api/v1/streaming/ws"
    assert {"auth", "startStream", "heartbeat", "stopStream", "streamEnded", "balanceLow", "error"} <= set(
        doc["operations"]
    )
    assert json.loads(DOCS.read_text()) == doc, "docs/asyncapi.json is behind: write it from /api/asyncapi.json"


def conforms(doc: dict, message: str, frame: dict) -> None:
    schema = {**doc, "$ref": f"#/components/messages/{message}/payload"}
    errors = [e.message for e in Draft202012Validator(schema).iter_errors(frame)]
    assert not errors, (message, frame, errors)


def test_a_real_session_sends_what_the_document_says(client, clock, players, movie, funded_viewer):
    doc = client.get("/api/asyncapi.json").json
    viewer = funded_viewer("0.2")  # 20 seconds at 0.01: low at once, out of money soon
    player = players(viewer["access_token"])
    started = player.call("startStream", content_id=movie["id"])
    conforms(doc, "startStreamReply", started)
    session_id = started["data"]["session_id"]
    conforms(doc, "balanceLow", player.wait_push("balanceLow"))
    clock.advance(5)
    conforms(doc, "heartbeatReply", player.call("heartbeat", session_id=session_id, position=5))
    clock.advance(16)
    player.call("heartbeat", session_id=session_id)
    conforms(doc, "streamEnded", player.wait_push("streamEnded"))
    refused = player.call("stopStream", session_id=session_id)
    conforms(doc, "error", refused)
    assert refused["data"]["code"] == "session_not_active"
    conforms(doc, "error", player.call("danceParty"))

    other = players()
    conforms(doc, "error", other.call("auth", token="garbage"))
    conforms(doc, "authReply", other.call("auth", token=register(client)["access_token"]))
    again = player.call("startStream", content_id=movie["id"])
    conforms(doc, "startStreamReply" if again["event"] == "startStream" else "error", again)
    conforms(doc, "stopStreamReply", player.call("stopStream", session_id=again["data"]["session_id"]))
