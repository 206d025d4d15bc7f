"""Worker payouts: reserve, Stripe Transfer keyed by the payout row, outcome recorded once."""

from __future__ import annotations

import pytest
from django.test import override_settings

from payments.enums import AccountKind, OwnerKind, PayoutStatus
from payments.models import LedgerTransaction, Payout, PayoutAccount
from payments.services.ledger import ledger_reconcile
from payments.services.payouts import payout_execute
from payments.stripe_client import StripeTransientError
from payments.tasks import payout_execute as payout_execute_task
from tests.factories import WorkerFactory, client_for
from tests.payments.factories import balance, balances, fund_requester, fund_worker, platform_balance

pytestmark = pytest.mark.django_db


def _transfers(fake) -> list[dict]:
    return [o for o in fake.objects.values() if o["object"] == "transfer"]


@pytest.fixture
def onboarded(worker, worker_client, stripe_fake):
    """A worker with a ready Connect account, 2000 cents available, and 5000 at Stripe."""
    acct = worker_client.post("/api/v1/work/payout-account").json()["stripe_account_id"]
    stripe_fake.onboarding_complete(acct)
    PayoutAccount.objects.filter(worker=worker).update(is_ready=True)
    fund_worker(worker.pk, 2000)
    stripe_fake.balance["usd"] = 5000
    return worker


def _available(worker) -> int:
    return balance(OwnerKind.WORKER, worker.pk, AccountKind.AVAILABLE)


def test_payout_transfers_once_and_settles(
    onboarded, worker_client, stripe_fake, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = worker_client.post("/api/v1/work/payouts", {"amount_cents": 1500}, format="json")

    payout = Payout.objects.get()
    assert response.status_code == 202
    assert response.json()["status"] == "pending"  # rendered before the task ran
    assert payout.status == PayoutStatus.PAID
    [transfer] = _transfers(stripe_fake)
    assert (transfer["amount"], transfer["destination"], payout.stripe_transfer_id) == (
        1500,
        payout.destination,
        transfer["id"],
    )
    assert _available(onboarded) == 500
    assert platform_balance(AccountKind.PAYOUTS_IN_TRANSIT) == 0
    assert platform_balance(AccountKind.STRIPE_CLEARING) == -2000 + 1500
    assert balances() == {"platform:stripe_clearing": -500, f"worker:{onboarded.pk}:available": 500}
    assert stripe_fake.balance == {"usd": 3500}
    assert ledger_reconcile() == []
    detail = worker_client.get(f"/api/v1/work/payouts/{payout.pk}")
    assert detail.json()["status"] == "paid"


def test_lost_reply_then_retry_with_the_same_key_makes_no_second_transfer(onboarded, stripe_fake):
    payout = _request(onboarded, 1000)
    stripe_fake.fail_next("lost_reply", path_prefix="/v1/transfers")
    stripe_fake.fail_next("timeout", path_prefix="/v1/transfers", times=2)  # the SDK's own retries also fail

    with pytest.raises(StripeTransientError):
        payout_execute(payout_id=payout.pk)
    payout.refresh_from_db()
    mid = (payout.status, _available(onboarded), platform_balance(AccountKind.PAYOUTS_IN_TRANSIT))
    final = payout_execute(payout_id=payout.pk)  # the task's retry
    again = payout_execute(payout_id=payout.pk)  # a redelivered task

    assert mid == (PayoutStatus.PROCESSING, 1000, 1000)
    assert (final.status, again.status, final.attempts) == (PayoutStatus.PAID, PayoutStatus.PAID, 2)
    assert len(_transfers(stripe_fake)) == 1
    keys = {body for method, path, body in stripe_fake.requests if path == "/v1/transfers"}
    assert len(keys) == 1  # every attempt sent the same request
    assert stripe_fake.balance == {"usd": 4000}
    assert _available(onboarded) == 1000
    assert platform_balance(AccountKind.PAYOUTS_IN_TRANSIT) == 0
    assert balances() == {"platform:stripe_clearing": -1000, f"worker:{onboarded.pk}:available": 1000}
    assert LedgerTransaction.objects.filter(idempotency_key=f"payout:{payout.pk}:settle").count() == 1


def test_refused_transfer_fails_the_payout_and_returns_the_money(onboarded, stripe_fake):
    stripe_fake.balance["usd"] = 10
    payout = _request(onboarded, 1500)

    result = payout_execute_task.delay(payout.pk).get()

    payout.refresh_from_db()
    assert result == "failed"
    assert (payout.status, payout.failure_code) == (PayoutStatus.FAILED, "balance_insufficient")
    assert _available(onboarded) == 2000
    assert balances() == {"platform:stripe_clearing": -2000, f"worker:{onboarded.pk}:available": 2000}
    assert platform_balance(AccountKind.PAYOUTS_IN_TRANSIT) == 0
    assert _transfers(stripe_fake) == []
    assert ledger_reconcile() == []


def _request(worker, amount):
    from payments.services.payouts import payout_request

    return payout_request(worker=worker, amount_cents=amount)


@override_settings(PAYOUT_MINIMUM_CENTS=500)
@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"amount_cents": 499}, 400, "invalid"),
        ({"amount_cents": 0}, 400, "invalid"),
        ({"amount_cents": -100}, 400, "invalid"),
        ({"amount_cents": 1000, "currency": "EUR"}, 400, "invalid"),
        ({"amount_cents": 2001}, 409, "insufficient_funds"),
    ],
)
def test_bad_payout_requests_change_nothing(onboarded, worker_client, stripe_fake, body, status, code):
    response = worker_client.post("/api/v1/work/payouts", body, format="json")

    assert response.status_code == status
    assert response.json()["code"] == code
    assert Payout.objects.count() == 0
    assert _available(onboarded) == 2000
    assert balances() == {"platform:stripe_clearing": -2000, f"worker:{onboarded.pk}:available": 2000}
    assert _transfers(stripe_fake) == []


def test_payout_before_onboarding_is_refused(worker, worker_client, stripe_fake):
    fund_worker(worker.pk, 2000)
    before = worker_client.post("/api/v1/work/payouts", {"amount_cents": 1000}, format="json")
    worker_client.post("/api/v1/work/payout-account")  # started, not finished
    unfinished = worker_client.post("/api/v1/work/payouts", {"amount_cents": 1000}, format="json")

    for response in (before, unfinished):
        assert response.status_code == 409
        assert response.json()["code"] == "payout_account_not_ready"
    assert Payout.objects.count() == 0
    assert _available(worker) == 2000
    assert balances() == {"platform:stripe_clearing": -2000, f"worker:{worker.pk}:available": 2000}


def test_payout_idempotency_key_and_other_workers_payouts(onboarded, worker_client, stripe_fake):
    first = worker_client.post(
        "/api/v1/work/payouts", {"amount_cents": 600}, format="json", HTTP_IDEMPOTENCY_KEY="p1"
    )
    again = worker_client.post(
        "/api/v1/work/payouts", {"amount_cents": 600}, format="json", HTTP_IDEMPOTENCY_KEY="p1"
    )
    other = client_for(WorkerFactory().user).get(f"/api/v1/work/payouts/{first.json()['id']}")
    listing = worker_client.get("/api/v1/work/payouts")

    assert first.json()["id"] == again.json()["id"]
    assert Payout.objects.count() == 1
    assert _available(onboarded) == 1400
    assert balances() == {
        "platform:stripe_clearing": -2000,
        f"worker:{onboarded.pk}:available": 1400,
        "platform:payouts_in_transit": 600,
    }
    assert other.status_code == 404 and other.json()["code"] == "not_found"
    assert [p["id"] for p in listing.json()["results"]] == [first.json()["id"]]


def test_requester_only_user_cannot_use_worker_payouts(requester_client, requester):
    fund_requester(requester.pk, 5000)
    response = requester_client.post("/api/v1/work/payouts", {"amount_cents": 1000}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "not_a_worker"
    assert Payout.objects.count() == 0
    assert balances() == {"platform:stripe_clearing": -5000, f"requester:{requester.pk}:available": 5000}
