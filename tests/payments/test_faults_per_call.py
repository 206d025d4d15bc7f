"""Every fault the Stripe fake can inject, on the calls not covered elsewhere (Checkout Session
create, Connect account create): the first request fails, a retry with the same idempotency key
then leaves exactly one object at Stripe and one row here, and no money moves."""

from __future__ import annotations

import pytest

from payments.enums import AccountKind, OwnerKind
from payments.models import FundingIntent
from payments.services.ledger import ledger_reconcile
from tests.payments.factories import balance

pytestmark = pytest.mark.django_db

# The SDK retries a failed call itself (max_network_retries=2) with the same idempotency key, so
# three timeouts or 5xx in a row reach our code as a 503, while a lost reply (executed at Stripe,
# never answered) is healed by the SDK's retry, which Stripe answers from the stored first reply.
FAULT_RUNS = [("timeout", 3, 503), ("5xx", 3, 503), ("lost_reply", 1, None), ("lost_reply", 3, None)]


def _objects(fake, kind: str) -> list[dict]:
    return [o for o in fake.objects.values() if o["object"] == kind]


@pytest.mark.parametrize(("fault", "times", "first_status"), FAULT_RUNS)
def test_funding_survives_each_fault_with_one_session(
    requester, requester_client, stripe_fake, fault, times, first_status
):
    # given Stripe fails the Checkout Session create
    stripe_fake.fail_next(fault, path_prefix="/v1/checkout/sessions", times=times)

    # when the requester's app retries with the same key
    failed = requester_client.post(
        "/api/v1/funding", {"amount_cents": 2500}, format="json", HTTP_IDEMPOTENCY_KEY="top-up-1"
    )
    retried = requester_client.post(
        "/api/v1/funding", {"amount_cents": 2500}, format="json", HTTP_IDEMPOTENCY_KEY="top-up-1"
    )

    # then the first answer is a retryable 503 (or healed), the retry finds the same intent and
    # Stripe holds one session
    if first_status == 503:
        assert (failed.status_code, failed.json()["code"]) == (503, "payment_provider_unavailable")
    else:
        assert failed.status_code == 201
        assert failed.json() == retried.json()
    assert retried.status_code == 201, retried.json()
    assert FundingIntent.objects.count() == 1
    sessions = _objects(stripe_fake, "checkout.session")
    assert len(sessions) == 1
    assert retried.json()["checkout_url"] == sessions[0]["url"]
    assert balance(OwnerKind.REQUESTER, requester.pk, AccountKind.AVAILABLE) == 0
    assert ledger_reconcile() == []


@pytest.mark.parametrize(("fault", "times", "first_status"), FAULT_RUNS)
def test_payout_account_survives_each_fault_with_one_connect_account(
    worker, worker_client, stripe_fake, fault, times, first_status
):
    # given Stripe fails the Connect account create
    stripe_fake.fail_next(fault, path_prefix="/v1/accounts", times=times)

    # when the worker asks again
    failed = worker_client.post("/api/v1/work/payout-account")
    retried = worker_client.post("/api/v1/work/payout-account")

    # then one Connect account exists, and the retry returns it with an onboarding link
    assert failed.status_code == (first_status or 200)
    assert retried.status_code in (200, 201), retried.json()
    accounts = _objects(stripe_fake, "account")
    assert len(accounts) == 1
    assert retried.json()["stripe_account_id"] == accounts[0]["id"]
    assert retried.json()["onboarding_url"]
    assert balance(OwnerKind.WORKER, worker.pk, AccountKind.AVAILABLE) == 0
