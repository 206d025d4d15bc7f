"""A crash between the Stripe call and the database commit: Stripe did the work, we never recorded
it. The retry (same idempotency key, derived from our row) must find Stripe's first result, and no
money may be created, lost or paid twice."""

from __future__ import annotations

import pytest

from payments import stripe_client
from payments.enums import AccountKind, FundingStatus, OwnerKind, PayoutStatus, RefundStatus
from payments.models import FundingIntent, LedgerTransaction, Payout, PayoutAccount
from payments.services.ledger import ledger_reconcile
from payments.services.payouts import payout_execute
from payments.services.refunds import refund_execute, refund_request
from tests.payments.factories import (
    balance,
    balances,
    deliver,
    fund_by_card,
    fund_worker,
    platform_balance,
    post_event,
)

pytestmark = pytest.mark.django_db


class Crash(Exception):
    """The process dies: nothing after the Stripe call runs."""


def _crash_after(monkeypatch, name: str) -> list[dict]:
    """Make ``stripe_client.<name>`` reach Stripe, then crash before returning; once."""
    real = getattr(stripe_client, name)
    answered: list[dict] = []

    def call_then_crash(*args, **kwargs):
        answered.append(real(*args, **kwargs))
        monkeypatch.setattr(stripe_client, name, real)  # the next process runs normally
        raise Crash

    monkeypatch.setattr(stripe_client, name, call_then_crash)
    return answered


def test_funding_crash_after_the_session_is_created_resumes_the_same_session(
    requester, requester_client, stripe_fake, anon, monkeypatch, django_capture_on_commit_callbacks
):
    # given Stripe created the session but we crashed before saving it
    answered = _crash_after(monkeypatch, "checkout_session_create")
    with pytest.raises(Crash):
        requester_client.post(
            "/api/v1/funding", {"amount_cents": 2500}, format="json", HTTP_IDEMPOTENCY_KEY="k"
        )
    intent = FundingIntent.objects.get()
    assert (intent.status, intent.stripe_session_id) == (FundingStatus.CREATED, "")

    # when the app retries, and the customer pays
    retried = requester_client.post(
        "/api/v1/funding", {"amount_cents": 2500}, format="json", HTTP_IDEMPOTENCY_KEY="k"
    )
    events = stripe_fake.checkout_complete(answered[0]["id"])
    with django_capture_on_commit_callbacks(execute=True):
        for event in events:
            post_event(anon, event)

    # then the retry got Stripe's first session, and the money arrived once
    assert retried.status_code == 201
    assert retried.json()["checkout_url"] == answered[0]["url"]
    assert [o["id"] for o in stripe_fake.objects.values() if o["object"] == "checkout.session"] == [
        answered[0]["id"]
    ]
    assert balance(OwnerKind.REQUESTER, requester.pk, AccountKind.AVAILABLE) == 2500
    assert balances() == {"platform:stripe_clearing": -2500, f"requester:{requester.pk}:available": 2500}
    assert LedgerTransaction.objects.filter(kind="funding").count() == 1
    assert ledger_reconcile() == []


def test_payout_crash_after_the_transfer_pays_once_on_retry(worker, worker_client, stripe_fake, monkeypatch):
    # given a ready worker with 2000 cents and a payout of 1500 whose transfer went out before a crash
    acct = worker_client.post("/api/v1/work/payout-account").json()["stripe_account_id"]
    stripe_fake.onboarding_complete(acct)
    PayoutAccount.objects.filter(worker=worker).update(is_ready=True)
    fund_worker(worker.pk, 2000)
    stripe_fake.balance["usd"] = 5000
    monkeypatch.setattr("payments.tasks.payout_execute.delay", lambda *a, **k: None)  # run it by hand
    assert (
        worker_client.post("/api/v1/work/payouts", {"amount_cents": 1500}, format="json").status_code == 202
    )
    payout = Payout.objects.get()
    answered = _crash_after(monkeypatch, "transfer_create")
    with pytest.raises(Crash):
        payout_execute(payout_id=payout.pk)
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.PROCESSING  # we do not know the outcome yet

    # when the task is retried (or the requeue beat picks it up)
    done = payout_execute(payout_id=payout.pk)

    # then one transfer, recorded as paid, and the money moved once
    transfers = [o for o in stripe_fake.objects.values() if o["object"] == "transfer"]
    assert [t["id"] for t in transfers] == [answered[0]["id"]]
    assert (done.status, done.stripe_transfer_id) == (PayoutStatus.PAID, answered[0]["id"])
    assert balance(OwnerKind.WORKER, worker.pk, AccountKind.AVAILABLE) == 500
    assert platform_balance(AccountKind.PAYOUTS_IN_TRANSIT) == 0
    assert balances() == {"platform:stripe_clearing": -500, f"worker:{worker.pk}:available": 500}
    assert stripe_fake.balance == {"usd": 3500}
    assert ledger_reconcile() == []


def test_onboarding_crash_after_the_account_is_created_resumes_the_same_account(
    worker, worker_client, stripe_fake, monkeypatch
):
    # given Stripe created the Connect account but we crashed before saving its id
    answered = _crash_after(monkeypatch, "account_create")
    with pytest.raises(Crash):
        worker_client.post("/api/v1/work/payout-account")
    assert PayoutAccount.objects.get(worker=worker).stripe_account_id == ""

    # when the worker asks again
    retried = worker_client.post("/api/v1/work/payout-account")

    # then the retry (same key ``payout-account:<row id>``) got Stripe's first account: one exists
    assert retried.status_code == 200
    assert retried.json()["stripe_account_id"] == answered[0]["id"]
    assert [o["id"] for o in stripe_fake.objects.values() if o["object"] == "account"] == [answered[0]["id"]]
    assert PayoutAccount.objects.get(worker=worker).stripe_account_id == answered[0]["id"]
    assert balances() == {}


def test_onboarding_crash_after_the_link_is_created_reuses_the_account(
    worker, worker_client, stripe_fake, monkeypatch
):
    # given the account was saved, then Stripe made the link and we crashed before answering
    _crash_after(monkeypatch, "account_link_create")
    with pytest.raises(Crash):
        worker_client.post("/api/v1/work/payout-account")
    saved = PayoutAccount.objects.get(worker=worker).stripe_account_id

    # when the worker asks again
    retried = worker_client.post("/api/v1/work/payout-account")

    # then the same account, a fresh link (links are single-use and carry no money)
    assert retried.status_code == 200
    assert retried.json()["stripe_account_id"] == saved != ""
    assert retried.json()["onboarding_url"].startswith(f"https://connect.stripe.com/setup/e/{saved}/")
    assert len([o for o in stripe_fake.objects.values() if o["object"] == "account"]) == 1
    assert balances() == {}


def test_refund_crash_after_stripe_refunded_settles_once_on_retry(
    requester, requester_client, stripe_fake, monkeypatch
):
    # given a requester who paid 2000 by card and a refund of 1500 that Stripe made before a crash
    funding = fund_by_card(requester_client, stripe_fake, 2000)
    [refund] = refund_request(requester=requester, amount_cents=1500).refunds
    answered = _crash_after(monkeypatch, "refund_create")
    with pytest.raises(Crash):
        refund_execute(refund_id=refund.pk)
    refund.refresh_from_db()
    assert refund.status == RefundStatus.PROCESSING  # we do not know the outcome yet

    # when the task is retried (or the requeue beat picks it up)
    done = refund_execute(refund_id=refund.pk)

    # then one Stripe refund, recorded as succeeded, and the money left once
    refunds = [o for o in stripe_fake.objects.values() if o["object"] == "refund"]
    assert [r["id"] for r in refunds] == [answered[0]["id"]]
    assert (done.status, done.stripe_refund_id) == (RefundStatus.SUCCEEDED, answered[0]["id"])
    assert stripe_fake.balance == {"usd": 500}
    assert balances() == {"platform:stripe_clearing": -500, f"requester:{requester.pk}:available": 500}
    funding.refresh_from_db()
    assert funding.refunded_cents == 1500
    assert ledger_reconcile() == []


def test_funding_paid_before_the_crashed_request_is_retried_is_credited_once(
    requester, requester_client, stripe_fake, monkeypatch
):
    # given Stripe created the session, we crashed before saving it, and the customer paid anyway
    answered = _crash_after(monkeypatch, "checkout_session_create")
    with pytest.raises(Crash):
        requester_client.post(
            "/api/v1/funding", {"amount_cents": 2500}, format="json", HTTP_IDEMPOTENCY_KEY="k"
        )
    events = stripe_fake.checkout_complete(answered[0]["id"])

    # when the webhooks arrive (the session is news to us), then the app retries the request
    outcomes = deliver(*events)
    intent = FundingIntent.objects.get()
    retried = requester_client.post(
        "/api/v1/funding", {"amount_cents": 2500}, format="json", HTTP_IDEMPOTENCY_KEY="k"
    )

    # then the webhook credited 2500 once and recorded the session; the retry shows it paid and
    # asks Stripe for nothing more
    assert outcomes == ["credited", "already credited"]
    assert (intent.status, intent.stripe_session_id) == (FundingStatus.SUCCEEDED, answered[0]["id"])
    assert intent.stripe_payment_intent_id == events[0]["data"]["object"]["id"]
    assert (retried.status_code, retried.json()["status"]) == (201, FundingStatus.SUCCEEDED)
    assert len([r for r in stripe_fake.requests if r[1] == "/v1/checkout/sessions"]) == 1
    assert balances() == {"platform:stripe_clearing": -2500, f"requester:{requester.pk}:available": 2500}
    assert ledger_reconcile() == []
