from __future__ import annotations

from tests.stellar.conftest import XLM
from tests.stellar.test_payouts import check, run


def test_at_most_a_hundred_payments_per_transaction(client, runner, horizon, paid_creator):
    creators = [paid_creator(XLM + i) for i in range(201)]
    assert run(runner)["paid"] == 201
    assert len(horizon.applied) == 3  # ceil(201 / 100)
    assert all(horizon.balance(k.public_key) == XLM + XLM + i for i, (_, k) in enumerate(creators))
    check(runner)
