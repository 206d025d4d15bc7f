"""Parallel refunds and bonuses against one requester on PostgreSQL: never overdrawn, never over-
refunded, each Idempotency-Key acted on once."""

from __future__ import annotations

from unittest import mock

import pytest
from django.db.models import Sum
from django.utils import timezone

from marketplace.errors import Conflict
from payments.enums import AccountKind, FundingStatus, OwnerKind
from payments.models import Bonus, FundingIntent, Refund
from payments.services.bonuses import bonus_pay
from payments.services.ledger import ledger_reconcile
from payments.services.refunds import refund_request
from tests.concurrency.conftest import run_threads
from tests.factories import RequesterFactory, WorkerFactory
from tests.payments.factories import balance, balances, fund_requester

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _paid_funding(requester, amount: int, n: int) -> FundingIntent:
    """A funding as the webhook would leave it (the Stripe side is not needed: the call is mocked)."""
    fund_requester(requester.pk, amount)
    return FundingIntent.objects.create(
        requester=requester,
        amount_cents=amount,
        currency="USD",
        status=FundingStatus.SUCCEEDED,
        stripe_payment_intent_id=f"pi_{n}",
        succeeded_at=timezone.now(),
    )


def test_parallel_refunds_and_bonuses_never_overdraw_or_over_refund():
    # given a requester with two card payments, 1000 and 1500
    requester, worker = RequesterFactory(), WorkerFactory()
    fundings = [_paid_funding(requester, 1000, 1), _paid_funding(requester, 1500, 2)]
    refused: list[str] = []

    def refund(i: int):
        def run() -> None:
            try:
                refund_request(requester=requester, amount_cents=700, idempotency_key=f"r{i % 5}")
            except Conflict as exc:
                refused.append(exc.code)

        return run

    def bonus(i: int):
        def run() -> None:
            try:
                bonus_pay(
                    requester=requester,
                    worker=worker,
                    amount_cents=100,
                    reason="x",
                    idempotency_key=f"b{i % 3}",
                )
            except Conflict as exc:
                refused.append(exc.code)

        return run

    # when 10 refund requests of 700 (5 keys) race 6 bonuses of 100 (3 keys)
    with mock.patch("payments.services.refunds._enqueue"):
        failures = run_threads([refund(i) for i in range(10)] + [bonus(i) for i in range(6)])

    # then nothing is overdrawn or over-refunded, each key acted once, and nothing else moved
    assert failures == []
    refunded = Refund.objects.aggregate(total=Sum("amount_cents"))["total"] or 0
    keys = set(Refund.objects.values_list("client_key", flat=True))
    bonuses = Bonus.objects.count()
    available = balance(OwnerKind.REQUESTER, requester.pk, AccountKind.AVAILABLE)
    assert bonuses <= 3 and len(keys) <= 5
    assert refunded == 700 * len(keys)
    assert available == 2500 - refunded - bonuses * 110 >= 0
    assert set(refused) <= {"insufficient_funds", "refund_exceeds_charges"}
    for funding in fundings:
        funding.refresh_from_db()
        mine = Refund.objects.filter(funding=funding).aggregate(total=Sum("amount_cents"))["total"] or 0
        assert funding.refunded_cents == mine <= funding.amount_cents
    assert balance(OwnerKind.WORKER, worker.pk, AccountKind.PENDING) == 100 * bonuses
    # how many won the race varies; the balances must follow exactly from the ones that did
    expected = {
        "platform:stripe_clearing": -2500,
        f"requester:{requester.pk}:available": 2500 - refunded - bonuses * 110,
        "platform:refunds": refunded,  # reserved for Stripe: the refund task is not run here
        f"worker:{worker.pk}:pending": 100 * bonuses,
        "platform:fee_revenue": 10 * bonuses,
    }
    assert balances() == {name: cents for name, cents in expected.items() if cents != 0}
    assert ledger_reconcile() == []
