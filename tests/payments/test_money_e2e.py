"""End to end through the API, the real SDK and the fake: fund, reserve, pay for accepted answers,
bonus, close, hold release, payout, refund of the rest; then the ledger reconciles and the
platform keeps exactly the fees it charged."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from marketplace.selectors import worker_pseudonym
from payments.enums import AccountKind, OwnerKind, PayoutStatus, RefundStatus
from payments.models import Account, LedgerEntry, Payout, Refund
from payments.money import fee_cents
from payments.services.escrow import (
    pay_worker_for_accept,
    pending_to_available_sweep,
    release_reserve,
    reserve,
)
from payments.services.ledger import ledger_reconcile, platform_account
from tests.factories import AssignmentFactory, BatchFactory, ProjectFactory, WorkerFactory, client_for
from tests.payments.factories import balance, balances, deliver, fund_by_card, platform_balance

pytestmark = pytest.mark.django_db

FEE_BPS = 1000
PRICE = 200


@override_settings(PLATFORM_FEE_BPS=FEE_BPS, EARNINGS_HOLD_DAYS=7, PAYOUT_MINIMUM_CENTS=100)
def test_the_whole_money_loop_reconciles_and_the_platform_keeps_exactly_its_fees(
    requester, requester_client, stripe_fake, django_capture_on_commit_callbacks
):
    workers = [WorkerFactory(), WorkerFactory()]
    batch = BatchFactory(project=ProjectFactory(requester=requester), price_cents=PRICE, overlap=1)

    # Funding: Checkout through the SDK, the customer pays at the fake, signed webhooks credit it.
    funding = fund_by_card(requester_client, stripe_fake, 10_000)
    req, w0, w1 = f"requester:{requester.pk}", f"worker:{workers[0].pk}", f"worker:{workers[1].pk}"
    assert balances() == {"platform:stripe_clearing": -10_000, f"{req}:available": 10_000}
    # Publish: 5 tasks * overlap 1 * price, plus the fee on it.
    budget = 5 * PRICE
    reserve_total = budget + fee_cents(budget, FEE_BPS)
    reserve(requester=requester, amount_cents=reserve_total, idempotency_key=f"reserve:batch:{batch.pk}")
    assert balances() == {
        "platform:stripe_clearing": -10_000,
        f"{req}:available": 8_900,
        f"{req}:reserved": 1_100,
    }
    # Three accepted answers (two by the first worker), each paying price to the worker and the fee.
    fees_charged = 0
    for worker in [workers[0], workers[1], workers[0]]:
        assignment = AssignmentFactory(
            batch=batch, task__batch=batch, worker=worker, status="accepted", submitted_at=timezone.now()
        )
        fee = fee_cents(PRICE, FEE_BPS)
        pay_worker_for_accept(
            requester=requester,
            worker=worker,
            price_cents=PRICE,
            fee_cents=fee,
            idempotency_key=f"accept:assignment:{assignment.pk}",
        )
        fees_charged += fee
    assert balances() == {
        "platform:stripe_clearing": -10_000,
        f"{req}:available": 8_900,
        f"{req}:reserved": 1_100 - 3 * 220,
        f"{w0}:pending": 400,
        f"{w1}:pending": 200,
        "platform:fee_revenue": 60,
    }
    # Close: the unspent reserve goes back to available.
    spent = 3 * (PRICE + fee_cents(PRICE, FEE_BPS))
    release_reserve(
        requester=requester, amount_cents=reserve_total - spent, idempotency_key=f"close:batch:{batch.pk}"
    )
    assert balances() == {
        "platform:stripe_clearing": -10_000,
        f"{req}:available": 9_340,
        f"{w0}:pending": 400,
        f"{w1}:pending": 200,
        "platform:fee_revenue": 60,
    }
    # A bonus to the second worker, by pseudonym, through the API.
    bonus = requester_client.post(
        "/api/v1/bonuses",
        {
            "worker": worker_pseudonym(requester_id=requester.pk, worker_id=workers[1].pk),
            "amount_cents": 350,
            "reason": "Flagged the broken items",
        },
        format="json",
        HTTP_IDEMPOTENCY_KEY="bonus-1",
    )
    assert bonus.status_code == 201
    fees_charged += bonus.json()["fee_cents"]
    assert balances() == {
        "platform:stripe_clearing": -10_000,
        f"{req}:available": 9_340 - 350 - 35,
        f"{w0}:pending": 400,
        f"{w1}:pending": 200 + 350,
        "platform:fee_revenue": 60 + 35,
    }

    # The hold period ends.
    moved = pending_to_available_sweep(now=timezone.now() + timedelta(days=8))
    assert moved == 3 * PRICE + 350
    assert balances() == {
        "platform:stripe_clearing": -10_000,
        f"{req}:available": 8_955,
        f"{w0}:available": 400,
        f"{w1}:available": 550,
        "platform:fee_revenue": 95,
    }

    # Both workers onboard (account.updated webhook) and withdraw everything.
    for worker in workers:
        client = client_for(worker.user)
        acct = client.post("/api/v1/work/payout-account").json()["stripe_account_id"]
        assert deliver(stripe_fake.onboarding_complete(acct)) == ["ready=True"]
        amount = balance(OwnerKind.WORKER, worker.pk, AccountKind.AVAILABLE)
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post("/api/v1/work/payouts", {"amount_cents": amount}, format="json")
        assert response.status_code == 202
    assert list(Payout.objects.order_by("id").values_list("amount_cents", "status")) == [
        (2 * PRICE, PayoutStatus.PAID),
        (PRICE + 350, PayoutStatus.PAID),
    ]
    assert balances() == {
        "platform:stripe_clearing": -10_000 + 400 + 550,
        f"{req}:available": 8_955,
        "platform:fee_revenue": 95,
    }

    # The requester takes the rest back to the card; Stripe's refund events change nothing more.
    rest = balance(OwnerKind.REQUESTER, requester.pk, AccountKind.AVAILABLE)
    with django_capture_on_commit_callbacks(execute=True):
        refund = requester_client.post("/api/v1/refunds", {"amount_cents": rest}, format="json")
    assert refund.status_code == 202
    deliver(*[e for e in stripe_fake.events if e["type"] in ("refund.created", "charge.refunded")])
    [row] = Refund.objects.all()
    assert (row.funding_id, row.amount_cents, row.status) == (funding.pk, rest, RefundStatus.SUCCEEDED)

    # The reconciliation: service and command agree the ledger is balanced.
    assert ledger_reconcile() == []
    out = StringIO()
    call_command("reconcile_ledger", stdout=out)
    assert out.getvalue().startswith("ledger balanced:")
    # Everyone is paid out; the platform keeps exactly the fees it charged, and Stripe holds them.
    assert rest == 10_000 - reserve_total + (reserve_total - spent) - 350 - fee_cents(350, FEE_BPS)
    assert fees_charged == 3 * 20 + 35
    fee_account = platform_account(AccountKind.FEE_REVENUE)
    assert fee_account.balance_cents == fees_charged
    assert sum(
        LedgerEntry.objects.filter(credit_account=fee_account).values_list("amount_cents", flat=True)
    ) == (fees_charged)
    assert not LedgerEntry.objects.filter(debit_account=fee_account).exists()
    non_platform = Account.objects.exclude(owner_kind=OwnerKind.PLATFORM)
    assert set(non_platform.values_list("balance_cents", flat=True)) == {0}
    assert platform_balance(AccountKind.PAYOUTS_IN_TRANSIT) == platform_balance(AccountKind.REFUNDS) == 0
    assert platform_balance(AccountKind.STRIPE_CLEARING) == -fees_charged
    assert stripe_fake.balance == {"usd": fees_charged}
    assert balances() == {"platform:stripe_clearing": -95, "platform:fee_revenue": 95}
