"""Parallel movements against one balance on PostgreSQL: never overdrawn, never paid twice."""

from __future__ import annotations

import pytest

from payments.enums import AccountKind, OwnerKind
from payments.errors import InsufficientFunds
from payments.models import LedgerTransaction, Payout, PayoutAccount
from payments.services.escrow import pay_worker_for_accept, reserve
from payments.services.ledger import ledger_reconcile
from payments.services.payouts import payout_request
from tests.concurrency.conftest import run_threads
from tests.factories import RequesterFactory, WorkerFactory
from tests.payments.factories import balance, balances, fund_requester, fund_worker

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_parallel_reserves_and_accepts_never_overdraw():
    # given 500 of a requester's 1000 reserved, and four workers
    requester = RequesterFactory()
    workers = [WorkerFactory() for _ in range(4)]
    fund_requester(requester.pk, 1000)
    reserve(requester=requester, amount_cents=500, idempotency_key="seed")
    refused: list[str] = []

    def reserve_one(i: int):
        def run() -> None:
            try:
                reserve(requester=requester, amount_cents=100, idempotency_key=f"reserve:{i}")
            except InsufficientFunds:
                refused.append(f"reserve:{i}")

        return run

    def accept_one(i: int):
        def run() -> None:
            try:
                pay_worker_for_accept(
                    requester=requester,
                    worker=workers[i % 4],
                    price_cents=90,
                    fee_cents=10,
                    idempotency_key=f"accept:{i % 8}",  # every key raced twice
                )
            except InsufficientFunds:
                refused.append(f"accept:{i}")

        return run

    # when 8 reserves of 100 race 16 payments for answers (8 keys, each raced twice)
    failures = run_threads([reserve_one(i) for i in range(8)] + [accept_one(i) for i in range(16)])

    # then no balance is overdrawn, each key paid at most once, and nothing else moved
    assert failures == []
    available = balance(OwnerKind.REQUESTER, requester.pk, AccountKind.AVAILABLE)
    reserved = balance(OwnerKind.REQUESTER, requester.pk, AccountKind.RESERVED)
    reserves_made = LedgerTransaction.objects.filter(kind="reserve").count() - 1
    accepts_made = LedgerTransaction.objects.filter(kind="accept").count()
    assert available == 500 - 100 * reserves_made >= 0
    assert reserves_made == 5  # exactly what 500 available allowed
    assert accepts_made <= 8  # each key at most once
    assert reserved == 500 + 100 * reserves_made - 100 * accepts_made >= 0
    # which keys won the race varies; the balances must follow exactly from the ones that did
    paid_keys = LedgerTransaction.objects.filter(kind="accept").values_list("idempotency_key", flat=True)
    paid_per_worker = {w.pk: 0 for w in workers}
    for key in paid_keys:
        paid_per_worker[workers[int(key.removeprefix("accept:")) % 4].pk] += 90
    expected = {
        "platform:stripe_clearing": -1000,
        f"requester:{requester.pk}:available": 500 - 100 * reserves_made,
        f"requester:{requester.pk}:reserved": 500 + 100 * reserves_made - 100 * accepts_made,
        "platform:fee_revenue": 10 * accepts_made,
    } | {f"worker:{pk}:pending": cents for pk, cents in paid_per_worker.items()}
    assert balances() == {name: cents for name, cents in expected.items() if cents != 0}
    assert ledger_reconcile() == []


def test_parallel_payout_requests_never_overdraw_the_worker():
    # given an onboarded worker with 2500 available
    worker = WorkerFactory()
    PayoutAccount.objects.create(worker=worker, stripe_account_id="acct_x", is_ready=True)
    fund_worker(worker.pk, 2500)
    refused: list[int] = []

    def request(i: int):
        def run() -> None:
            try:
                # No Celery here: the on_commit enqueue runs eagerly, so keep Stripe out of it.
                payout_request(worker=worker, amount_cents=1000, idempotency_key=f"k{i % 6}")
            except InsufficientFunds:
                refused.append(i)

        return run

    from unittest import mock

    # when 12 payout requests of 1000 race (6 keys, each raced twice)
    with mock.patch("payments.services.payouts._enqueue"):
        failures = run_threads([request(i) for i in range(12)])

    # then two are reserved, in transit, and the worker keeps 500
    assert failures == []
    assert Payout.objects.count() == 2
    assert balance(OwnerKind.WORKER, worker.pk, AccountKind.AVAILABLE) == 500
    assert balances() == {
        "platform:stripe_clearing": -2500,
        f"worker:{worker.pk}:available": 500,
        "platform:payouts_in_transit": 2000,
    }
    assert ledger_reconcile() == []
