"""The IPFS backend against a local stand-in of Kubo's HTTP RPC API (add, cat, pin/rm, block/stat)."""

from __future__ import annotations

import hashlib
import json
import threading
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from tests.conftest import bearer, register
from tests.content.conftest import fetch, run_jobs, upload


class _Kubo(BaseHTTPRequestHandler):
    blocks: dict[str, bytes]

    def log_message(self, *args) -> None:
        pass

    def _reply(self, status: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        url = urlparse(self.path)
        arg = parse_qs(url.query).get("arg", [""])[0]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if url.path == "/api/v0/add":
            message = BytesParser(policy=HTTP).parsebytes(
                f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + body
            )
            data = next(part.get_payload(decode=True) for part in message.iter_parts())
            cid = "bafy" + hashlib.sha256(data).hexdigest()[:52]
            self.server.blocks[cid] = data
            self._reply(200, json.dumps({"Name": "f", "Hash": cid, "Size": str(len(data))}).encode())
        elif url.path == "/api/v0/cat" and arg in self.server.blocks:
            self._reply(200, self.server.blocks[arg], "application/octet-stream")
        elif url.path == "/api/v0/block/stat" and arg in self.server.blocks:
            self._reply(200, json.dumps({"Key": arg, "Size": len(self.server.blocks[arg])}).encode())
        elif url.path == "/api/v0/pin/rm" and arg in self.server.blocks:
            del self.server.blocks[arg]
            self._reply(200, b"{}")
        else:
            self._reply(500, json.dumps({"Message": "not found", "Code": 0}).encode())


@pytest.fixture
def kubo():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Kubo)
    server.blocks = {}
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def app(app_factory, kubo, media_root):
    return app_factory(
        IPFS_API_URL=f"http://127.0.0.1:{kubo.server_port}",
        IPFS_GATEWAY_URL="http://gateway.invalid",
        MEDIA_ROOT=media_root,
    )


def test_upload_process_and_play_through_ipfs(app, client, kubo, media_files):
    creator = register(client, role="creator")
    item = upload(client, creator, media_files["video"]).json
    assert len(kubo.blocks) == 1
    run_jobs(app)
    ready = client.get(f"/api/v1/content/{item['id']}", headers=bearer(creator["access_token"])).json
    assert ready["status"] == "ready" and ready["has_thumbnail"] and ready["duration_ms"] >= 2900
    assert len(kubo.blocks) == 2  # the media and its thumbnail, content-addressed
    media = fetch(client, f"/api/v1/content/{item['id']}/media", headers=bearer(creator["access_token"]))
    assert media.status_code == 302 and media.headers["Location"].startswith("http://gateway.invalid/ipfs/bafy")


def test_refused_upload_adds_nothing_to_ipfs(client, kubo, media_files):
    creator = register(client, role="creator")
    assert upload(client, creator, media_files["garbage"]).status_code == 415
    assert kubo.blocks == {}
