"""The wallet page: balance, held, the ledger, and a deposit QR code that a wallet app can read."""

from __future__ import annotations

import io

import zxingcpp
from PIL import Image
from playwright.sync_api import expect
from stellar_sdk.sep.stellar_uri import PayStellarUri

from tests.web.conftest import IN_A_BROWSER, screenshot, sign_in

pytestmark = IN_A_BROWSER


def test_the_deposit_qr_decodes_to_the_custody_address_and_the_memo(page, site):
    viewer = site.register()
    site.credit(viewer["email"], "2.5")
    sign_in(page, viewer)
    page.get_by_role("link", name="Wallet").click()
    expect(page.locator("#wallet-balance")).to_have_text("2.5000000")
    expect(page.locator("#wallet-held")).to_have_text("0.0000000")
    deposit = site.wallet(viewer)["deposit"]
    expect(page.locator("#deposit-address")).to_have_text(site.custody.public_key)
    expect(page.locator("#deposit-memo")).to_have_text(deposit["memo"])
    expect(page.locator("#deposit-muxed")).to_have_text(deposit["muxed_address"])
    expect(page.get_by_role("table")).to_contain_text("test top-up")
    screenshot(page, "wallet")

    # What a phone's camera sees: the QR code as drawn on the page.
    picture = Image.open(io.BytesIO(page.get_by_role("img", name="QR code of the deposit request").screenshot()))
    [code] = zxingcpp.read_barcodes(picture.convert("L"))
    request = PayStellarUri.from_uri(code.text)
    assert request.destination == site.custody.public_key
    assert request.memo_type == "MEMO_ID" and str(request.memo) == deposit["memo"]
    assert code.text == deposit["payment_uri"]
