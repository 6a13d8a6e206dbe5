"""The deposit request as a SEP-7 URI and an SVG QR code of it, made by the server."""

from __future__ import annotations

from stellar_sdk import Keypair
from stellar_sdk.sep.stellar_uri import PayStellarUri

from tests.conftest import bearer, register


def test_the_deposit_qr_is_a_sep7_pay_request_to_custody_with_the_memo(app_factory):
    custody = Keypair.random()
    client = app_factory(STELLAR_MASTER_SECRET_KEY=custody.secret).test_client()
    viewer = register(client)
    deposit = client.get("/api/v1/wallet", headers=bearer(viewer["access_token"])).json["deposit"]
    request = PayStellarUri.from_uri(deposit["payment_uri"])
    assert request.destination == custody.public_key == deposit["address"]
    assert request.memo_type == "MEMO_ID" and request.memo == int(deposit["memo"])
    assert request.network_passphrase == "Test SDF Network ; September 2015"
    assert deposit["payment_uri"].startswith("web+stellar:pay?destination=")

    qr = client.get("/api/v1/wallet/deposit/qr", headers=bearer(viewer["access_token"]))
    assert qr.status_code == 200 and qr.mimetype == "image/svg+xml"
    assert qr.data.startswith(b"<?xml") and b"<svg" in qr.data and b"<path" in qr.data
    assert client.get("/api/v1/wallet/deposit/qr").status_code == 401


def test_no_custody_account_means_no_deposit_qr(client):
    viewer = register(client)
    assert client.get("/api/v1/wallet", headers=bearer(viewer["access_token"])).json["deposit"]["payment_uri"] is None
    missing = client.get("/api/v1/wallet/deposit/qr", headers=bearer(viewer["access_token"]))
    assert missing.status_code == 404 and missing.json["code"] == 404
