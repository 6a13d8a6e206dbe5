"""An admin runs payouts over HTTP; a retried request with its Idempotency-Key runs them once."""

from __future__ import annotations

from tests.conftest import bearer


def test_a_payout_run_retried_with_its_key_replays_the_first(client, make_admin, horizon, paid_creator):
    creator, keypair = paid_creator()
    admin = make_admin()
    headers = {**bearer(admin["access_token"]), "Idempotency-Key": "run-1"}
    first = client.post("/api/v1/payouts/runs", headers=headers)
    assert first.status_code == 200 and first.json["paid"] == 1, first.json
    again = client.post("/api/v1/payouts/runs", headers=headers)
    assert again.json == first.json and again.headers["Idempotent-Replayed"] == "true"
    assert len(horizon.submitted) == 1
    [payout] = client.get("/api/v1/payouts", headers=bearer(creator["access_token"])).json
    assert payout["status"] == "paid"
    refused = client.post("/api/v1/payouts/runs", headers=bearer(creator["access_token"]))
    assert refused.status_code == 403
