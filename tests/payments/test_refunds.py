"""Refunds: available funds back to the card in three phases, through the real SDK and the fake."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from payments.enums import AccountKind, OwnerKind, RefundStatus
from payments.models import FundingIntent, LedgerTransaction, Refund, StripeEvent
from payments.services.escrow import requester_freeze, reserve
from payments.services.ledger import ledger_reconcile
from payments.services.refunds import refund_execute, refund_request
from payments.stripe_client import StripeTransientError
from payments.tasks import refunds_requeue_stuck
from tests.factories import RequesterFactory, client_for, iso
from tests.payments.factories import (
    balance,
    balances,
    deliver,
    fund_by_card,
    fund_requester,
    platform_balance,
)

pytestmark = pytest.mark.django_db


def _available(requester) -> int:
    return balance(OwnerKind.REQUESTER, requester.pk, AccountKind.AVAILABLE)


def _stripe_refunds(fake) -> list[dict]:
    return [o for o in fake.objects.values() if o["object"] == "refund"]


def _row(refund: Refund) -> dict:
    refund.refresh_from_db()
    return {
        "id": refund.pk,
        "funding_id": refund.funding_id,
        "amount_cents": refund.amount_cents,
        "currency": "USD",
        "status": refund.status,
        "failure_code": refund.failure_code,
        "created_at": iso(refund.created_at),
        "updated_at": iso(refund.updated_at),
    }


def _snapshot(requester, fake) -> tuple:
    return (
        _available(requester),
        platform_balance(AccountKind.REFUNDS),
        platform_balance(AccountKind.STRIPE_CLEARING),
        Refund.objects.count(),
        LedgerTransaction.objects.count(),
        sorted(FundingIntent.objects.values_list("id", "refunded_cents")),
        len(_stripe_refunds(fake)),
        dict(fake.balance),
        balances(),
    )


def test_refund_reserves_calls_stripe_with_the_row_key_and_settles(
    requester, requester_client, stripe_fake, django_capture_on_commit_callbacks
):
    # given a requester who paid 3000 by card
    funding = fund_by_card(requester_client, stripe_fake, 3000)

    # when they refund 1200 and the task runs
    with django_capture_on_commit_callbacks(execute=True):
        response = requester_client.post(
            "/api/v1/refunds", {"amount_cents": 1200}, format="json", HTTP_IDEMPOTENCY_KEY="r1"
        )

    # then one Stripe refund under the row's key, and only the refunded 1200 has left
    refund = Refund.objects.get()
    assert response.status_code == 202
    assert response.json() == {
        "amount_cents": 1200,
        "currency": "USD",
        "refunds": [
            {**_row(refund), "status": "pending", "updated_at": response.json()["refunds"][0]["updated_at"]}
        ],
    }
    assert (refund.status, refund.attempts) == (RefundStatus.SUCCEEDED, 1)
    [made] = _stripe_refunds(stripe_fake)
    assert made["id"] == refund.stripe_refund_id
    assert (made["amount"], made["payment_intent"]) == (1200, funding.stripe_payment_intent_id)
    assert made["metadata"] == {
        "refund_id": str(refund.pk),
        "funding_id": str(funding.pk),
        "requester_id": str(requester.pk),
    }
    keys = {key for _, path, key in stripe_fake.requests if path == "/v1/refunds"}
    assert len(keys) == 1
    assert stripe_fake.balance == {"usd": 1800}
    assert _available(requester) == 1800
    assert platform_balance(AccountKind.REFUNDS) == 0
    assert platform_balance(AccountKind.STRIPE_CLEARING) == -1800
    assert balances() == {"platform:stripe_clearing": -1800, f"requester:{requester.pk}:available": 1800}
    funding.refresh_from_db()
    assert funding.refunded_cents == 1200
    assert set(
        LedgerTransaction.objects.filter(reference=f"refund:{refund.pk}").values_list(
            "idempotency_key", flat=True
        )
    ) == {
        f"refund:{refund.pk}:reserve",
        f"refund:{refund.pk}:settle",
    }
    assert requester_client.get(f"/api/v1/refunds/{refund.pk}").json() == _row(refund)
    assert ledger_reconcile() == []


def test_a_refund_spans_charges_newest_first_and_lists_newest_first(
    requester, requester_client, stripe_fake, django_capture_on_commit_callbacks, django_assert_num_queries
):
    # given two card payments, 1000 then 2000
    older = fund_by_card(requester_client, stripe_fake, 1000)
    newer = fund_by_card(requester_client, stripe_fake, 2000)

    # when 2500 is refunded
    with django_capture_on_commit_callbacks(execute=True):
        response = requester_client.post("/api/v1/refunds", {"amount_cents": 2500}, format="json")

    # then all of the newer charge and 500 of the older are refunded; 500 stays
    from_newer, from_older = Refund.objects.order_by("-funding_id")
    assert response.status_code == 202
    assert [(r["funding_id"], r["amount_cents"]) for r in response.json()["refunds"]] == [
        (newer.pk, 2000),
        (older.pk, 500),
    ]
    assert {(r["payment_intent"], r["amount"]) for r in _stripe_refunds(stripe_fake)} == {
        (newer.stripe_payment_intent_id, 2000),
        (older.stripe_payment_intent_id, 500),
    }
    assert (from_newer.status, from_older.status) == (RefundStatus.SUCCEEDED, RefundStatus.SUCCEEDED)
    assert sorted(FundingIntent.objects.values_list("id", "refunded_cents")) == [
        (older.pk, 500),
        (newer.pk, 2000),
    ]
    assert _available(requester) == 500
    assert stripe_fake.balance == {"usd": 500}
    assert balances() == {"platform:stripe_clearing": -500, f"requester:{requester.pk}:available": 500}
    with django_assert_num_queries(2):  # the token with its user and requester, the page
        listing = requester_client.get("/api/v1/refunds")
    assert [r["id"] for r in listing.json()["results"]] == sorted(
        [from_newer.pk, from_older.pk], reverse=True
    )
    assert ledger_reconcile() == []


def test_a_refund_of_a_given_funding_draws_only_on_it(
    requester, requester_client, stripe_fake, django_capture_on_commit_callbacks
):
    # given two card payments, 1000 then 2000
    older = fund_by_card(requester_client, stripe_fake, 1000)
    fund_by_card(requester_client, stripe_fake, 2000)

    # when 800 is refunded from the older one
    with django_capture_on_commit_callbacks(execute=True):
        response = requester_client.post(
            "/api/v1/refunds", {"amount_cents": 800, "funding_id": older.pk}, format="json"
        )

    # then only that charge is refunded, by 800
    assert response.status_code == 202
    assert [(r["funding_id"], r["amount_cents"]) for r in response.json()["refunds"]] == [(older.pk, 800)]
    [made] = _stripe_refunds(stripe_fake)
    assert made["payment_intent"] == older.stripe_payment_intent_id
    assert _available(requester) == 2200
    assert stripe_fake.balance == {"usd": 2200}
    assert balances() == {"platform:stripe_clearing": -2200, f"requester:{requester.pk}:available": 2200}


def test_refunding_more_than_available_is_409_with_the_shortfall_and_changes_nothing(
    requester, requester_client, stripe_fake
):
    # given 2000 paid by card, 1500 of it reserved for a batch
    fund_by_card(requester_client, stripe_fake, 2000)
    reserve(requester=requester, amount_cents=1500, idempotency_key="reserve:batch:1")
    before = _snapshot(requester, stripe_fake)

    # when 800 is asked back with 500 available
    response = requester_client.post("/api/v1/refunds", {"amount_cents": 800}, format="json")

    # then a 409 with the shortfall, and nothing moved
    assert response.status_code == 409
    assert response.json() == {
        "code": "insufficient_funds",
        "message": "Your available balance is too low for this refund.",
        "detail": {"account": "available", "balance_cents": 500, "shortfall_cents": 300, "currency": "USD"},
    }
    assert _snapshot(requester, stripe_fake) == before
    assert balances() == {
        "platform:stripe_clearing": -2000,
        f"requester:{requester.pk}:available": 500,
        f"requester:{requester.pk}:reserved": 1500,
    }


def test_refunding_more_than_the_charge_has_left_is_409_and_changes_nothing(
    requester, requester_client, stripe_fake, django_capture_on_commit_callbacks
):
    # given a 1000 card payment already refunded by 400, and 5000 credited without a card
    small = fund_by_card(requester_client, stripe_fake, 1000)
    with django_capture_on_commit_callbacks(execute=True):
        requester_client.post("/api/v1/refunds", {"amount_cents": 400, "funding_id": small.pk}, format="json")
    fund_requester(requester.pk, 5000)  # credited without a card (e.g. an adjustment): not refundable
    before = _snapshot(requester, stripe_fake)

    # when more than the 600 left on the charge is asked back, from it or from all charges
    one = requester_client.post(
        "/api/v1/refunds", {"amount_cents": 601, "funding_id": small.pk}, format="json"
    )
    all_charges = requester_client.post("/api/v1/refunds", {"amount_cents": 700}, format="json")

    # then both are 409 with what is refundable, and nothing moved
    assert one.status_code == all_charges.status_code == 409
    assert one.json() == {
        "code": "refund_exceeds_charges",
        "message": "The card charges have less left to refund than asked.",
        "detail": {"refundable_cents": 600, "shortfall_cents": 1, "currency": "USD"},
    }
    assert all_charges.json()["detail"] == {
        "refundable_cents": 600,
        "shortfall_cents": 100,
        "currency": "USD",
    }
    assert _snapshot(requester, stripe_fake) == before
    assert before[0] == 5600
    assert balances() == {"platform:stripe_clearing": -5600, f"requester:{requester.pk}:available": 5600}


def test_lost_reply_then_retry_makes_one_refund(requester, requester_client, stripe_fake):
    # given a 1500 refund of a 2000 card payment, whose Stripe reply will be lost
    fund_by_card(requester_client, stripe_fake, 2000)
    [refund] = refund_request(requester=requester, amount_cents=1500).refunds
    stripe_fake.fail_next("lost_reply", path_prefix="/v1/refunds")
    stripe_fake.fail_next("timeout", path_prefix="/v1/refunds", times=2)  # the SDK's own retries fail too

    # when the task fails, is retried, and is redelivered
    with pytest.raises(StripeTransientError):
        refund_execute(refund_id=refund.pk)
    refund.refresh_from_db()
    mid = (refund.status, _available(requester), platform_balance(AccountKind.REFUNDS), stripe_fake.balance)
    mid_balances = balances()
    final = refund_execute(refund_id=refund.pk)  # the task's retry
    again = refund_execute(refund_id=refund.pk)  # a redelivered task

    # then one Stripe refund, settled once
    assert mid == (RefundStatus.PROCESSING, 500, 1500, {"usd": 500})  # Stripe did refund: the reply was lost
    assert mid_balances == {
        "platform:stripe_clearing": -2000,
        f"requester:{requester.pk}:available": 500,
        "platform:refunds": 1500,
    }
    assert (final.status, again.status, final.attempts) == (RefundStatus.SUCCEEDED, RefundStatus.SUCCEEDED, 2)
    assert len(_stripe_refunds(stripe_fake)) == 1
    assert len({body for _, path, body in stripe_fake.requests if path == "/v1/refunds"}) == 1
    assert stripe_fake.balance == {"usd": 500}
    assert (_available(requester), platform_balance(AccountKind.REFUNDS)) == (500, 0)
    assert platform_balance(AccountKind.STRIPE_CLEARING) == -500
    assert balances() == {"platform:stripe_clearing": -500, f"requester:{requester.pk}:available": 500}
    assert LedgerTransaction.objects.filter(idempotency_key=f"refund:{refund.pk}:settle").count() == 1
    assert ledger_reconcile() == []


def test_a_retried_request_with_the_same_key_returns_the_first_refund(
    requester, requester_client, stripe_fake, django_capture_on_commit_callbacks
):
    # given 2000 paid by card
    fund_by_card(requester_client, stripe_fake, 2000)

    # when a 700 refund is sent twice with one key, then with that key for another amount
    with django_capture_on_commit_callbacks(execute=True):
        first = requester_client.post(
            "/api/v1/refunds", {"amount_cents": 700}, format="json", HTTP_IDEMPOTENCY_KEY="k"
        )
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        again = requester_client.post(
            "/api/v1/refunds", {"amount_cents": 700}, format="json", HTTP_IDEMPOTENCY_KEY="k"
        )
    other = requester_client.post(
        "/api/v1/refunds", {"amount_cents": 701}, format="json", HTTP_IDEMPOTENCY_KEY="k"
    )

    # then the first refund is returned, the other amount refused, and only 700 moved
    assert first.status_code == again.status_code == 202
    assert [r["id"] for r in again.json()["refunds"]] == [r["id"] for r in first.json()["refunds"]]
    assert again.json()["refunds"][0]["status"] == "succeeded"
    assert callbacks == []
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"
    assert Refund.objects.count() == 1 and len(_stripe_refunds(stripe_fake)) == 1
    assert _available(requester) == 1300
    assert balances() == {"platform:stripe_clearing": -1300, f"requester:{requester.pk}:available": 1300}


def test_another_requesters_refunds_and_fundings_are_404(requester, requester_client, stripe_fake):
    # given another requester with 2000 paid and a 500 refund pending, and ours with 1000 paid
    other = RequesterFactory()
    other_client = client_for(other.user)
    theirs = fund_by_card(other_client, stripe_fake, 2000)
    [their_refund] = refund_request(requester=other, amount_cents=500).refunds
    fund_by_card(requester_client, stripe_fake, 1000)
    before = _snapshot(requester, stripe_fake)

    # when ours reads their refund, refunds from their funding, and lists refunds
    detail = requester_client.get(f"/api/v1/refunds/{their_refund.pk}")
    on_their_funding = requester_client.post(
        "/api/v1/refunds", {"amount_cents": 100, "funding_id": theirs.pk}, format="json"
    )
    listing = requester_client.get("/api/v1/refunds")

    # then 404s and an empty list, and nobody's money moved
    assert detail.status_code == on_their_funding.status_code == 404
    assert detail.json() == {"code": "not_found", "message": "Refund not found.", "detail": {}}
    assert on_their_funding.json() == {"code": "not_found", "message": "Funding not found.", "detail": {}}
    assert listing.json()["results"] == []
    assert _snapshot(requester, stripe_fake) == before
    assert balances() == {
        "platform:stripe_clearing": -3000,
        f"requester:{other.pk}:available": 1500,
        "platform:refunds": 500,
        f"requester:{requester.pk}:available": 1000,
    }


def test_an_unpaid_funding_is_not_refundable(requester, requester_client, stripe_fake):
    # given a checkout never paid, and 1000 credited without a card
    open_funding = requester_client.post("/api/v1/funding", {"amount_cents": 1000}, format="json").json()
    fund_requester(requester.pk, 1000)
    before = balances()

    # when a refund is asked from the unpaid checkout
    response = requester_client.post(
        "/api/v1/refunds", {"amount_cents": 100, "funding_id": open_funding["id"]}, format="json"
    )

    # then a 409, and nothing moved
    assert response.status_code == 409
    assert response.json()["code"] == "funding_not_refundable"
    assert Refund.objects.count() == 0 and _available(requester) == 1000
    assert balances() == before
    assert before == {"platform:stripe_clearing": -1000, f"requester:{requester.pk}:available": 1000}


@pytest.mark.parametrize(
    "body",
    [
        {"amount_cents": 0},
        {"amount_cents": -5},
        {"amount_cents": "ten"},
        {"amount_cents": 100, "currency": "EUR"},
        {},
    ],
)
def test_bad_refund_requests_are_400_and_change_nothing(requester, requester_client, stripe_fake, body):
    # given 1000 paid by card
    fund_by_card(requester_client, stripe_fake, 1000)
    before = _snapshot(requester, stripe_fake)

    # when a malformed refund is asked
    response = requester_client.post("/api/v1/refunds", body, format="json")

    # then a 400, and nothing moved
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert _snapshot(requester, stripe_fake) == before
    assert balances() == {"platform:stripe_clearing": -1000, f"requester:{requester.pk}:available": 1000}


def test_refunds_are_for_requesters_and_refused_while_frozen(
    requester, requester_client, worker_client, stripe_fake
):
    # given 1000 paid by card and the requester frozen by a chargeback
    fund_by_card(requester_client, stripe_fake, 1000)
    requester_freeze(requester_id=requester.pk, reason="chargeback")
    before = _snapshot(requester, stripe_fake)

    # when the frozen requester, then a worker, ask for a refund
    frozen = requester_client.post("/api/v1/refunds", {"amount_cents": 100}, format="json")
    as_worker = worker_client.post("/api/v1/refunds", {"amount_cents": 100}, format="json")

    # then both are refused, and nothing moved
    assert frozen.status_code == 409 and frozen.json()["code"] == "requester_frozen"
    assert as_worker.status_code == 403 and as_worker.json()["code"] == "not_a_requester"
    assert _snapshot(requester, stripe_fake) == before
    assert balances() == {"platform:stripe_clearing": -1000, f"requester:{requester.pk}:available": 1000}


def test_a_refused_stripe_refund_returns_the_money(requester, requester_client, stripe_fake):
    # given a 1500 refund of a 2000 card payment that Stripe's balance cannot cover
    funding = fund_by_card(requester_client, stripe_fake, 2000)
    stripe_fake.balance["usd"] = 100  # Stripe's balance cannot cover it
    [refund] = refund_request(requester=requester, amount_cents=1500).refunds

    # when the refund is sent
    result = refund_execute(refund_id=refund.pk)

    # then it fails and the 1500 is back in available
    funding.refresh_from_db()
    assert (result.status, result.failure_code) == (RefundStatus.FAILED, "balance_insufficient")
    assert (_available(requester), platform_balance(AccountKind.REFUNDS)) == (2000, 0)
    assert platform_balance(AccountKind.STRIPE_CLEARING) == -2000
    assert balances() == {"platform:stripe_clearing": -2000, f"requester:{requester.pk}:available": 2000}
    assert funding.refunded_cents == 0
    assert _stripe_refunds(stripe_fake) == []
    assert ledger_reconcile() == []


def test_refund_webhooks_are_harmless_after_the_reply_and_record_a_lost_one(
    requester, requester_client, stripe_fake
):
    # given a settled 500 refund and a 700 refund whose reply was lost, of a 2000 card payment
    fund_by_card(requester_client, stripe_fake, 2000)
    [done] = refund_request(requester=requester, amount_cents=500).refunds
    refund_execute(refund_id=done.pk)
    [lost] = refund_request(requester=requester, amount_cents=700).refunds
    stripe_fake.fail_next("lost_reply", path_prefix="/v1/refunds")
    stripe_fake.fail_next("timeout", path_prefix="/v1/refunds", times=2)
    with pytest.raises(StripeTransientError):
        refund_execute(refund_id=lost.pk)
    events = [e for e in stripe_fake.events if e["type"] in ("refund.created", "charge.refunded")]
    assert balances() == {
        "platform:stripe_clearing": -1500,
        f"requester:{requester.pk}:available": 800,
        "platform:refunds": 700,
    }

    # when Stripe's refund events arrive, twice, and the task is retried
    outcomes = deliver(*events)
    redelivered = deliver(*events)
    lost.refresh_from_db()
    retried = refund_execute(refund_id=lost.pk)  # the task's retry finds it recorded

    # then the lost one is settled once, from the event
    assert outcomes == [
        f"refund {done.pk} already succeeded",
        f"noted: funding {done.funding_id} refunded 500 at Stripe, 1200 here",
        f"refund {lost.pk} succeeded",
        f"noted: funding {done.funding_id} refunded 1200 at Stripe, 1200 here",
    ]
    assert redelivered == outcomes  # same events: stored once, not processed again
    assert StripeEvent.objects.count() == 4 + 2  # plus the two funding events
    assert (lost.status, lost.stripe_refund_id, retried.status) == (
        RefundStatus.SUCCEEDED,
        events[2]["data"]["object"]["id"],
        RefundStatus.SUCCEEDED,
    )
    assert len(_stripe_refunds(stripe_fake)) == 2
    assert (_available(requester), platform_balance(AccountKind.REFUNDS)) == (800, 0)
    assert platform_balance(AccountKind.STRIPE_CLEARING) == -800 == -stripe_fake.balance["usd"]
    assert balances() == {"platform:stripe_clearing": -800, f"requester:{requester.pk}:available": 800}
    assert ledger_reconcile() == []


def test_a_refund_that_fails_later_returns_the_money_once(requester, requester_client, stripe_fake):
    # given a settled 1500 refund of a 2000 card payment, which Stripe then fails
    funding = fund_by_card(requester_client, stripe_fake, 2000)
    [refund] = refund_request(requester=requester, amount_cents=1500).refunds
    refund_execute(refund_id=refund.pk)
    refund.refresh_from_db()
    updated, failed = stripe_fake.refund_fail(refund.stripe_refund_id)
    assert balances() == {"platform:stripe_clearing": -500, f"requester:{requester.pk}:available": 500}

    # when both failure events arrive
    outcomes = deliver(updated, failed)

    # then the 1500 is back in available once
    refund.refresh_from_db()
    funding.refresh_from_db()
    assert outcomes == [
        f"refund {refund.pk} failed: money back to available",
        f"refund {refund.pk} already failed",
    ]
    assert (refund.status, refund.failure_code) == (RefundStatus.FAILED, "expired_or_canceled_card")
    assert funding.refunded_cents == 0
    assert _available(requester) == 2000
    assert stripe_fake.balance == {"usd": 2000}
    assert platform_balance(AccountKind.STRIPE_CLEARING) == -2000
    assert balances() == {"platform:stripe_clearing": -2000, f"requester:{requester.pk}:available": 2000}
    assert ledger_reconcile() == []


def test_stuck_refunds_are_requeued_with_the_same_key(requester, requester_client, stripe_fake):
    # given a 900 refund of a 2000 card payment whose task never ran, an hour old
    fund_by_card(requester_client, stripe_fake, 2000)
    [refund] = refund_request(requester=requester, amount_cents=900).refunds  # its task never ran
    fresh = refunds_requeue_stuck()
    assert balances() == {
        "platform:stripe_clearing": -2000,
        f"requester:{requester.pk}:available": 1100,
        "platform:refunds": 900,
    }
    Refund.objects.filter(pk=refund.pk).update(updated_at=timezone.now() - timedelta(hours=1))

    # when the sweep runs twice
    first = refunds_requeue_stuck()
    second = refunds_requeue_stuck()

    # then it is sent once and settled
    refund.refresh_from_db()
    assert (fresh, first, second) == ([], [refund.pk], [])
    assert refund.status == RefundStatus.SUCCEEDED
    assert len(_stripe_refunds(stripe_fake)) == 1
    assert (_available(requester), stripe_fake.balance) == (1100, {"usd": 1100})
    assert balances() == {"platform:stripe_clearing": -1100, f"requester:{requester.pk}:available": 1100}
    assert ledger_reconcile() == []


def test_refund_events_that_are_not_ours_change_nothing(requester, requester_client, stripe_fake):
    # given a pending 300 refund of a 1000 card payment, and events about refunds that are not it
    funding = fund_by_card(requester_client, stripe_fake, 1000)
    [refund] = refund_request(requester=requester, amount_cents=300).refunds  # still pending
    base = {"object": "refund", "amount": 300, "currency": "usd", "payment_intent": "pi_x"}
    events = [
        stripe_fake.event("refund.created", {**base, "id": "re_a", "status": "succeeded", "metadata": {}}),
        stripe_fake.event(
            "refund.updated",
            {**base, "id": "re_b", "status": "succeeded", "metadata": {"refund_id": "999999"}},
        ),
        stripe_fake.event(
            "refund.updated",
            {**base, "id": "re_c", "status": "requires_action", "metadata": {"refund_id": str(refund.pk)}},
        ),
        stripe_fake.event(
            "charge.refunded",
            {"id": "ch_x", "object": "charge", "payment_intent": "pi_unknown", "amount_refunded": 5},
        ),
    ]
    before = _snapshot(requester, stripe_fake)

    # when they arrive
    outcomes = deliver(*events)

    # then each is ignored, and nothing moved
    refund.refresh_from_db()
    assert outcomes == [
        "ignored: no refund_id",
        "ignored: unknown refund 999999",
        "ignored: status 'requires_action'",
        "ignored: no funding for this charge",
    ]
    assert refund.status == RefundStatus.PENDING
    assert _snapshot(requester, stripe_fake) == before
    assert balances() == {
        "platform:stripe_clearing": -1000,
        f"requester:{requester.pk}:available": 700,
        "platform:refunds": 300,
    }
    assert funding.pk == refund.funding_id


def test_admin_retry_queues_unfinished_refunds(
    requester, requester_client, stripe_fake, django_capture_on_commit_callbacks
):
    from django.test import Client

    from marketplace.models import User

    # given a pending 400 refund of a 1000 card payment, and an admin
    fund_by_card(requester_client, stripe_fake, 1000)
    [refund] = refund_request(requester=requester, amount_cents=400).refunds
    client = Client()
    client.force_login(User.objects.create_superuser("admin@example.com", "pw-Secret-123"))

    # when the admin retries it
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/payments/refund/", {"action": "retry", "_selected_action": [refund.pk]}, follow=True
        )

    # then it is sent and settled
    refund.refresh_from_db()
    assert [str(m) for m in response.context["messages"]] == ["Queued 1 refund(s)."]
    assert refund.status == RefundStatus.SUCCEEDED
    assert (_available(requester), stripe_fake.balance) == (600, {"usd": 600})
    assert balances() == {"platform:stripe_clearing": -600, f"requester:{requester.pk}:available": 600}
