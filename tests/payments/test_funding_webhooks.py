"""Funding through Checkout and the signed webhook, posted to the real view."""

from __future__ import annotations

import json

import pytest

from payments import stripe_client
from payments.enums import AccountKind, FundingStatus, OwnerKind
from payments.models import (
    FundingIntent,
    LedgerTransaction,
    PayoutAccount,
    RequesterAccountState,
    StripeEvent,
)
from payments.services.ledger import ledger_reconcile
from payments.tasks import stripe_events_process_pending
from tests.factories import RequesterFactory, WorkerFactory, client_for
from tests.payments.factories import balance, balances, fund_requester, platform_balance, post_event

pytestmark = pytest.mark.django_db


def _available(requester) -> int:
    return balance(OwnerKind.REQUESTER, requester.pk, AccountKind.AVAILABLE)


def _fund(client, stripe_fake, amount=2500, key="top-up-1"):
    response = client.post(
        "/api/v1/funding", {"amount_cents": amount}, format="json", HTTP_IDEMPOTENCY_KEY=key
    )
    assert response.status_code == 201, response.json()
    intent = FundingIntent.objects.get(pk=response.json()["id"])
    return response, intent


def test_funding_creates_a_checkout_session_keyed_by_the_intent(requester, requester_client, stripe_fake):
    response, intent = _fund(requester_client, stripe_fake)

    session = stripe_fake.objects[intent.stripe_session_id]
    assert response.json() == {
        "id": intent.pk,
        "amount_cents": 2500,
        "currency": "USD",
        "status": "open",
        "checkout_url": session["url"],
        "created_at": response.json()["created_at"],
    }
    assert session["metadata"] == {"funding_id": str(intent.pk), "requester_id": str(requester.pk)}
    assert _available(requester) == 0
    assert balances() == {}


def test_a_retried_funding_request_returns_the_same_intent_and_session(
    requester, requester_client, stripe_fake
):
    # given Stripe unreachable for the first request
    stripe_fake.fail_next("timeout", times=3)  # beyond the SDK's 2 retries

    # when one top-up is retried with its key, then the key is reused for another amount
    failed = requester_client.post(
        "/api/v1/funding", {"amount_cents": 2500}, format="json", HTTP_IDEMPOTENCY_KEY="k1"
    )
    first, _ = _fund(requester_client, stripe_fake, key="k1")
    again, _ = _fund(requester_client, stripe_fake, key="k1")
    other = requester_client.post(
        "/api/v1/funding", {"amount_cents": 999}, format="json", HTTP_IDEMPOTENCY_KEY="k1"
    )

    # then one intent and one session; an unpaid checkout credits nothing
    assert failed.status_code == 503
    assert failed.json()["code"] == "payment_provider_unavailable"
    assert first.json() == again.json()
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"
    assert FundingIntent.objects.count() == 1
    assert len([o for o in stripe_fake.objects.values() if o["object"] == "checkout.session"]) == 1
    assert balances() == {}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount_cents": 0}, "amount_cents"),
        ({"amount_cents": -5}, "amount_cents"),
        ({"amount_cents": "ten"}, "amount_cents"),
        ({"amount_cents": 99}, "amount_cents"),
        ({"amount_cents": 1000, "currency": "EUR"}, "currency"),
        ({}, "amount_cents"),
    ],
)
def test_bad_funding_input_is_refused_and_nothing_is_created(requester_client, stripe_fake, body, field):
    # given a requester with no money
    before = balances()

    # when a malformed top-up is asked
    response = requester_client.post("/api/v1/funding", body, format="json")

    # then a 400 naming the field, and nothing created or moved
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert field in response.json()["detail"]
    assert FundingIntent.objects.count() == 0
    assert stripe_fake.requests == []
    assert balances() == before == {}


def test_funding_is_for_requesters(worker_client, stripe_fake):
    # when a worker asks for a top-up
    response = worker_client.post("/api/v1/funding", {"amount_cents": 1000}, format="json")

    # then a 403, and nothing created or moved
    assert response.status_code == 403
    assert response.json()["code"] == "not_a_requester"
    assert FundingIntent.objects.count() == 0
    assert balances() == {}


def test_paid_checkout_credits_the_requester_once_whatever_the_deliveries(
    requester, requester_client, stripe_fake, anon, django_capture_on_commit_callbacks
):
    _, intent = _fund(requester_client, stripe_fake)
    pi_succeeded, session_completed = stripe_fake.checkout_complete(intent.stripe_session_id)

    with django_capture_on_commit_callbacks(execute=True):
        first = post_event(anon, session_completed)
    with django_capture_on_commit_callbacks(execute=True):
        duplicate = post_event(anon, session_completed)
    with django_capture_on_commit_callbacks(execute=True):
        other_event = post_event(anon, pi_succeeded)

    assert first.status_code == 200 and first.json() == {"id": session_completed["id"], "duplicate": False}
    assert duplicate.status_code == 200 and duplicate.json() == {
        "id": session_completed["id"],
        "duplicate": True,
    }
    assert other_event.status_code == 200
    assert _available(requester) == 2500
    assert platform_balance(AccountKind.STRIPE_CLEARING) == -2500
    assert balances() == {"platform:stripe_clearing": -2500, f"requester:{requester.pk}:available": 2500}
    assert LedgerTransaction.objects.filter(kind="funding").count() == 1
    assert list(StripeEvent.objects.order_by("id").values_list("outcome", flat=True)) == [
        "credited",
        "already credited",
    ]
    intent.refresh_from_db()
    assert intent.status == FundingStatus.SUCCEEDED
    assert intent.stripe_payment_intent_id == pi_succeeded["data"]["object"]["id"]
    assert ledger_reconcile() == []


def test_payment_intent_first_then_session_also_credits_once(
    requester, requester_client, stripe_fake, anon, django_capture_on_commit_callbacks
):
    _, intent = _fund(requester_client, stripe_fake)
    pi_succeeded, session_completed = stripe_fake.checkout_complete(intent.stripe_session_id)

    with django_capture_on_commit_callbacks(execute=True):
        post_event(anon, pi_succeeded)
        post_event(anon, session_completed)

    assert _available(requester) == 2500
    assert LedgerTransaction.objects.filter(kind="funding").count() == 1

    assert balances() == {"platform:stripe_clearing": -2500, f"requester:{requester.pk}:available": 2500}


def test_bad_signature_is_refused_and_nothing_is_stored(requester, requester_client, stripe_fake, anon):
    _, intent = _fund(requester_client, stripe_fake)
    _, session_completed = stripe_fake.checkout_complete(intent.stripe_session_id)
    payload = json.dumps(session_completed)

    wrong_secret = post_event(anon, session_completed, secret="whsec_someone_else")
    no_header = anon.post("/api/v1/stripe/webhook", data=payload, content_type="application/json")
    tampered = anon.post(
        "/api/v1/stripe/webhook",
        data=payload.replace("2500", "250000"),
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=stripe_client.webhook_sign(payload),
    )
    stale = anon.post(
        "/api/v1/stripe/webhook",
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=stripe_client.webhook_sign(payload, timestamp=1_000_000),
    )

    for response in (wrong_secret, no_header, tampered, stale):
        assert response.status_code == 400
        assert response.json()["code"] == "invalid_signature"
    assert StripeEvent.objects.count() == 0
    assert _available(requester) == 0
    assert balances() == {}


def test_amount_mismatch_is_refused_not_credited(
    requester, requester_client, stripe_fake, anon, django_capture_on_commit_callbacks
):
    _, intent = _fund(requester_client, stripe_fake)
    _, session_completed = stripe_fake.checkout_complete(intent.stripe_session_id)
    session_completed["data"]["object"]["amount_total"] = 999999
    session_completed["id"] = "evt_forged_amount"

    with django_capture_on_commit_callbacks(execute=True):
        response = post_event(anon, session_completed)

    assert response.status_code == 200
    assert StripeEvent.objects.get().outcome.startswith("refused: funding_amount_mismatch")
    assert _available(requester) == 0
    assert balances() == {}


def test_chargeback_freezes_the_requester_even_when_it_arrives_before_the_payment(
    requester, requester_client, stripe_fake, anon, django_capture_on_commit_callbacks
):
    # given a paid 2500 checkout that the customer disputes
    _, intent = _fund(requester_client, stripe_fake)
    pi_succeeded, session_completed = stripe_fake.checkout_complete(intent.stripe_session_id)
    dispute = stripe_fake.dispute_create(pi_succeeded["data"]["object"]["id"])

    # when the dispute arrives before the payment, then the payment, then the sweep runs
    with django_capture_on_commit_callbacks(execute=True):
        post_event(anon, dispute)  # out of order: we do not know the payment intent yet
    not_yet = StripeEvent.objects.get(stripe_id=dispute["id"])
    with django_capture_on_commit_callbacks(execute=True):
        post_event(anon, session_completed)
    swept = stripe_events_process_pending.delay().get()

    # then the payment is credited once, the requester frozen, and a new top-up refused
    assert not_yet.processed_at is None
    assert swept == 1
    state = RequesterAccountState.objects.get(requester=requester)
    assert state.is_frozen and state.frozen_reason.startswith(f"chargeback {dispute['data']['object']['id']}")
    again = requester_client.post("/api/v1/funding", {"amount_cents": 1000}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "requester_frozen"
    assert requester_client.get("/api/v1/balance").json()["requester"] == {
        "available_cents": 2500,
        "reserved_cents": 0,
        "is_frozen": True,
    }
    assert balances() == {"platform:stripe_clearing": -2500, f"requester:{requester.pk}:available": 2500}


def test_account_updated_marks_the_payout_account_ready_and_ignores_older_events(
    stripe_fake, anon, django_capture_on_commit_callbacks
):
    # given a worker onboarding, and Stripe's ready event with a stale one after it
    worker = WorkerFactory()
    client = client_for(worker.user)
    onboarding = client.post("/api/v1/work/payout-account")
    acct = onboarding.json()["stripe_account_id"]
    ready_event = stripe_fake.onboarding_complete(acct)
    stale_event = dict(ready_event, id="evt_stale", created=ready_event["created"] - 60)
    stale_event["data"] = {"object": dict(ready_event["data"]["object"], payouts_enabled=False)}

    # when both arrive
    with django_capture_on_commit_callbacks(execute=True):
        post_event(anon, ready_event)
        post_event(anon, stale_event)

    # then the account is ready and stays so; onboarding is not money, so no balance moved
    assert onboarding.status_code == 200
    assert onboarding.json()["is_ready"] is False
    assert onboarding.json()["onboarding_url"].startswith(f"https://connect.stripe.com/setup/e/{acct}/")
    assert PayoutAccount.objects.get(worker=worker).is_ready is True
    assert StripeEvent.objects.get(stripe_id="evt_stale").outcome == "ignored: older than the state applied"
    assert balances() == {}


def test_unhandled_event_types_are_stored_and_closed(anon, django_capture_on_commit_callbacks, stripe_fake):
    # given an event type we do not handle
    event = stripe_fake.event("customer.created", {"id": "cus_1", "object": "customer"})

    # when it arrives
    with django_capture_on_commit_callbacks(execute=True):
        response = post_event(anon, event)

    # then it is stored and closed, and no balance moved
    assert response.status_code == 200
    stored = StripeEvent.objects.get()
    assert (stored.type, stored.outcome, stored.attempts) == (
        "customer.created",
        "ignored: unhandled type",
        1,
    )
    assert balances() == {}


def test_balance_endpoint_for_a_user_with_both_roles():
    # given a user who is a requester with 1234 available and also a worker
    requester = RequesterFactory()
    worker = WorkerFactory(user=requester.user)
    fund_requester(requester.pk, 1234)

    # when they read their balance
    response = client_for(requester.user).get("/api/v1/balance")

    # then both sides show, and reading moved nothing
    assert response.status_code == 200
    assert response.json() == {
        "currency": "USD",
        "requester": {"available_cents": 1234, "reserved_cents": 0, "is_frozen": False},
        "worker": {"available_cents": 0, "pending_cents": 0},
    }
    assert worker.pk
    assert balances() == {"platform:stripe_clearing": -1234, f"requester:{requester.pk}:available": 1234}
