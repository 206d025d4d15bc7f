"""Every fault the Stripe fake can inject, on every call we make to Stripe: Checkout Session create,
Connect account create, account link create, Transfer create and Refund create.

Transient faults (timeout, 5xx, a 409 from a concurrent request with the same key) leave the money
where phase 1 put it, and a retry with the same idempotency key ends with exactly one object at
Stripe; a lost reply is healed by the retry, which Stripe answers from the stored first reply;
refusals (4xx, a card error, a refund Stripe fails at once) return the money exactly. Every test
compares all balances whole, so it also proves that nothing else moved. Crashes between the Stripe
call and our commit are in ``test_crash_after_stripe.py``, webhook orderings with their flows.
"""

from __future__ import annotations

import pytest

from payments import stripe_client
from payments.enums import FundingStatus, PayoutStatus, RefundStatus
from payments.models import FundingIntent, LedgerTransaction, PayoutAccount, Refund
from payments.services.ledger import ledger_reconcile
from payments.services.payouts import payout_execute, payout_request
from payments.services.refunds import refund_execute, refund_request
from payments.stripe_client import StripePermanentError, StripeTransientError
from tests.payments.factories import balances, deliver, fund_by_card, fund_worker

pytestmark = pytest.mark.django_db

# The SDK retries a failed call itself (max_network_retries=2) with the same idempotency key, so
# three timeouts, 5xx or 409s in a row reach our code as a transient error (503 for the API calls),
# while a lost reply (executed at Stripe, never answered) is healed by the SDK's retry, which Stripe
# answers from the stored first reply.
FAULT_RUNS = [
    ("timeout", 3, 503),
    ("5xx", 3, 503),
    ("conflict", 3, 503),
    ("lost_reply", 1, None),
    ("lost_reply", 3, None),
]
TRANSIENT_RUNS = [(fault, times) for fault, times, status in FAULT_RUNS if status]


def _objects(fake, kind: str) -> list[dict]:
    return [o for o in fake.objects.values() if o["object"] == kind]


def _sent(fake, path: str) -> set[str]:
    """The distinct request bodies sent to ``path``: one means every attempt was the same request."""
    return {body for _, p, body in fake.requests if p == path}


# --- Checkout Session create (funding) -----------------------------------------------------------


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
    # Stripe holds one session; no money moves before the customer pays
    if first_status == 503:
        assert failed.json() == {
            "code": "payment_provider_unavailable",
            "message": "Stripe is unreachable; retry with the same Idempotency-Key.",
            "detail": {"funding_id": retried.json()["id"]},
        }
        assert failed.status_code == 503
    else:
        assert failed.status_code == 201
        assert failed.json() == retried.json()
    assert retried.status_code == 201, retried.json()
    assert FundingIntent.objects.count() == 1
    sessions = _objects(stripe_fake, "checkout.session")
    assert len(sessions) == 1
    assert len(_sent(stripe_fake, "/v1/checkout/sessions")) == 1
    assert retried.json()["checkout_url"] == sessions[0]["url"]
    assert retried.json()["status"] == FundingStatus.OPEN
    assert balances() == {}
    assert LedgerTransaction.objects.count() == 0


def test_funding_that_stripe_refuses_is_400_failed_and_moves_nothing(
    requester, requester_client, stripe_fake
):
    # given Stripe refuses the Checkout Session (e.g. the account cannot take payments)
    stripe_fake.refuse_next(path_prefix="/v1/checkout/sessions", code="account_invalid", status=400)

    # when the requester asks to top up, then retries with the same key
    refused = requester_client.post(
        "/api/v1/funding", {"amount_cents": 2500}, format="json", HTTP_IDEMPOTENCY_KEY="k"
    )
    retried = requester_client.post(
        "/api/v1/funding", {"amount_cents": 2500}, format="json", HTTP_IDEMPOTENCY_KEY="k"
    )

    # then a 400 with Stripe's code, the intent is failed for good (the retry shows it, no new call)
    intent = FundingIntent.objects.get()
    assert refused.status_code == 400
    assert refused.json() == {
        "code": "payment_refused",
        "message": "Stripe refused the payment request.",
        "detail": {"stripe_code": "account_invalid"},
    }
    assert (retried.status_code, retried.json()["id"], retried.json()["status"]) == (
        201,
        intent.pk,
        FundingStatus.FAILED,
    )
    assert retried.json()["checkout_url"] == ""
    assert (intent.status, intent.stripe_session_id) == (FundingStatus.FAILED, "")
    assert _objects(stripe_fake, "checkout.session") == []
    assert len([r for r in stripe_fake.requests if r[1] == "/v1/checkout/sessions"]) == 1
    assert balances() == {}


# --- Connect account create and account link create (onboarding) ------------------------------


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
    if first_status:
        assert failed.json() == {
            "code": "payment_provider_unavailable",
            "message": "Stripe is unreachable; try again.",
            "detail": {},
        }
    assert retried.status_code == 200, retried.json()
    accounts = _objects(stripe_fake, "account")
    assert len(accounts) == 1
    assert len(_sent(stripe_fake, "/v1/accounts")) == 1
    assert retried.json()["stripe_account_id"] == accounts[0]["id"]
    assert PayoutAccount.objects.get(worker=worker).stripe_account_id == accounts[0]["id"]
    assert retried.json()["onboarding_url"].startswith(
        f"https://connect.stripe.com/setup/e/{accounts[0]['id']}/"
    )
    assert balances() == {}


@pytest.mark.parametrize(("fault", "times", "first_status"), FAULT_RUNS)
def test_onboarding_link_survives_each_fault_and_keeps_the_one_account(
    worker, worker_client, stripe_fake, fault, times, first_status
):
    # given Stripe creates the Connect account but fails the account link
    stripe_fake.fail_next(fault, path_prefix="/v1/account_links", times=times)

    # when the worker asks again
    failed = worker_client.post("/api/v1/work/payout-account")
    saved = PayoutAccount.objects.get(worker=worker).stripe_account_id
    retried = worker_client.post("/api/v1/work/payout-account")

    # then the account was recorded before the link was asked for, so the retry reuses it
    [account] = _objects(stripe_fake, "account")
    assert saved == account["id"]
    assert failed.status_code == (first_status or 200)
    if first_status:
        assert failed.json()["code"] == "payment_provider_unavailable"
    else:
        assert failed.json()["stripe_account_id"] == account["id"]
    assert retried.status_code == 200
    assert retried.json()["stripe_account_id"] == account["id"]
    assert retried.json()["is_ready"] is False
    assert retried.json()["onboarding_url"].startswith(f"https://connect.stripe.com/setup/e/{account['id']}/")
    assert len([r for r in stripe_fake.requests if r[1] == "/v1/accounts"]) == 1
    assert balances() == {}


@pytest.mark.parametrize("path", ["/v1/accounts", "/v1/account_links"])
def test_onboarding_that_stripe_refuses_is_400_and_a_later_retry_works(
    worker, worker_client, stripe_fake, path
):
    # given Stripe refuses the account (or the link) once
    stripe_fake.refuse_next(path_prefix=path, code="account_invalid", status=400)

    # when the worker asks, and again once Stripe accepts
    refused = worker_client.post("/api/v1/work/payout-account")
    retried = worker_client.post("/api/v1/work/payout-account")

    # then a typed 400 with Stripe's code, not a server error; one account in the end
    assert refused.status_code == 400
    assert refused.json() == {
        "code": "payment_refused",
        "message": "Stripe refused the onboarding request.",
        "detail": {"stripe_code": "account_invalid"},
    }
    [account] = _objects(stripe_fake, "account")
    assert retried.status_code == 200
    assert retried.json()["stripe_account_id"] == account["id"]
    assert PayoutAccount.objects.get(worker=worker).stripe_account_id == account["id"]
    assert balances() == {}


# --- Transfer create (payouts) ------------------------------------------------------------------


@pytest.fixture
def onboarded(worker, worker_client, stripe_fake):
    """A worker with a ready Connect account and 2000 cents available; 5000 at Stripe."""
    acct = worker_client.post("/api/v1/work/payout-account").json()["stripe_account_id"]
    stripe_fake.onboarding_complete(acct)
    PayoutAccount.objects.filter(worker=worker).update(is_ready=True)
    fund_worker(worker.pk, 2000)
    stripe_fake.balance["usd"] = 5000
    return worker


@pytest.mark.parametrize(("fault", "times", "first_status"), FAULT_RUNS)
def test_payout_survives_each_fault_with_one_transfer(onboarded, stripe_fake, fault, times, first_status):
    # given a payout of 1500 reserved, and Stripe failing the transfer
    payout = payout_request(worker=onboarded, amount_cents=1500)
    w = f"worker:{onboarded.pk}"
    stripe_fake.fail_next(fault, path_prefix="/v1/transfers", times=times)

    # when the task runs, and runs again (its retry)
    if first_status:
        with pytest.raises(StripeTransientError):
            payout_execute(payout_id=payout.pk)
        payout.refresh_from_db()
        # then, in between, the money waits in transit: not paid, not returned
        assert payout.status == PayoutStatus.PROCESSING
        assert balances() == {
            "platform:stripe_clearing": -2000,
            f"{w}:available": 500,
            "platform:payouts_in_transit": 1500,
        }
        assert stripe_fake.balance == {"usd": 5000}
    done = payout_execute(payout_id=payout.pk)
    again = payout_execute(payout_id=payout.pk)

    # and in the end one transfer of 1500, recorded once
    [transfer] = _objects(stripe_fake, "transfer")
    assert (done.status, again.status, done.stripe_transfer_id) == (
        PayoutStatus.PAID,
        PayoutStatus.PAID,
        transfer["id"],
    )
    assert done.attempts == (2 if first_status else 1)
    assert transfer["amount"] == 1500
    assert len(_sent(stripe_fake, "/v1/transfers")) == 1
    assert stripe_fake.balance == {"usd": 3500}
    assert balances() == {"platform:stripe_clearing": -500, f"{w}:available": 500}
    assert ledger_reconcile() == []


def test_a_409_while_another_attempt_holds_the_key_never_returns_the_money(onboarded, stripe_fake):
    # given two attempts of one payout at once: ours gets 409 (every SDK retry too) while the
    # other attempt, holding the key ``payout:<id>``, is still executing at Stripe
    payout = payout_request(worker=onboarded, amount_cents=1500)
    stripe_fake.fail_next("conflict", path_prefix="/v1/transfers", times=3)
    with pytest.raises(StripeTransientError):
        payout_execute(payout_id=payout.pk)
    payout.refresh_from_db()
    in_between = (payout.status, balances()[f"worker:{onboarded.pk}:available"])

    # when the other attempt's transfer goes through (same request, same key) and ours retries
    other = stripe_client.transfer_create(
        amount_cents=1500,
        currency="USD",
        destination=payout.destination,
        metadata={"payout_id": str(payout.pk), "worker_id": str(onboarded.pk)},
        idempotency_key=payout.stripe_key,
    )
    done = payout_execute(payout_id=payout.pk)

    # then the 409 was not taken as a refusal: the payout is paid once, with the other's transfer,
    # and the worker's money was never handed back beside the transfer
    assert in_between == (PayoutStatus.PROCESSING, 500)
    assert (done.status, done.stripe_transfer_id) == (PayoutStatus.PAID, other["id"])
    assert [t["id"] for t in _objects(stripe_fake, "transfer")] == [other["id"]]
    assert stripe_fake.balance == {"usd": 3500}
    assert balances() == {"platform:stripe_clearing": -500, f"worker:{onboarded.pk}:available": 500}
    assert ledger_reconcile() == []


def test_a_refused_transfer_returns_exactly_the_payout(onboarded, stripe_fake):
    # given Stripe refuses the transfer (the connected account lost its capability)
    payout = payout_request(worker=onboarded, amount_cents=1500)
    stripe_fake.refuse_next(
        path_prefix="/v1/transfers", code="insufficient_capabilities_for_transfer", status=400
    )

    # when the task runs, and a redelivered task runs again
    failed = payout_execute(payout_id=payout.pk)
    again = payout_execute(payout_id=payout.pk)

    # then the payout failed once and all 1500 are back on the worker's available balance
    assert (failed.status, failed.failure_code, again.status) == (
        PayoutStatus.FAILED,
        "insufficient_capabilities_for_transfer",
        PayoutStatus.FAILED,
    )
    assert _objects(stripe_fake, "transfer") == []
    assert stripe_fake.balance == {"usd": 5000}
    assert balances() == {"platform:stripe_clearing": -2000, f"worker:{onboarded.pk}:available": 2000}
    assert LedgerTransaction.objects.filter(idempotency_key=f"payout:{payout.pk}:reverse").count() == 1
    assert ledger_reconcile() == []


def test_an_idempotency_error_on_a_transfer_keeps_the_money_in_transit(onboarded, stripe_fake):
    # given Stripe already holds another request under this payout's key (a bug of ours)
    payout = payout_request(worker=onboarded, amount_cents=1500)
    first = stripe_client.transfer_create(
        amount_cents=1000,
        currency="USD",
        destination=payout.destination,
        metadata={},
        idempotency_key=payout.stripe_key,
    )

    # when the task runs
    with pytest.raises(StripePermanentError) as err:
        payout_execute(payout_id=payout.pk)

    # then the key may have moved money, so nothing is returned: an admin must look
    payout.refresh_from_db()
    assert err.value.code == "idempotency_error"
    assert payout.status == PayoutStatus.PROCESSING
    assert [t["id"] for t in _objects(stripe_fake, "transfer")] == [first["id"]]
    assert balances() == {
        "platform:stripe_clearing": -2000,
        f"worker:{onboarded.pk}:available": 500,
        "platform:payouts_in_transit": 1500,
    }
    assert ledger_reconcile() == []


# --- Refund create ------------------------------------------------------------------------------


@pytest.fixture
def funded(requester, requester_client, stripe_fake):
    """A requester who paid 2000 by card; the card charge and Stripe's balance hold 2000."""
    return fund_by_card(requester_client, stripe_fake, 2000)


def _funded_balances(requester, *, available: int, refunds: int, clearing: int) -> dict[str, int]:
    out = {
        "platform:stripe_clearing": clearing,
        f"requester:{requester.pk}:available": available,
        "platform:refunds": refunds,
    }
    return {k: v for k, v in out.items() if v}


@pytest.mark.parametrize(("fault", "times", "first_status"), FAULT_RUNS)
def test_refund_survives_each_fault_with_one_stripe_refund(
    requester, funded, stripe_fake, fault, times, first_status
):
    # given a refund of 1500 reserved, and Stripe failing the refund create
    [refund] = refund_request(requester=requester, amount_cents=1500).refunds
    stripe_fake.fail_next(fault, path_prefix="/v1/refunds", times=times)

    # when the task runs, and runs again (its retry)
    if first_status:
        with pytest.raises(StripeTransientError):
            refund_execute(refund_id=refund.pk)
        refund.refresh_from_db()
        # then, in between, the money waits in the refunds account; the card got nothing yet
        assert refund.status == RefundStatus.PROCESSING
        assert balances() == _funded_balances(requester, available=500, refunds=1500, clearing=-2000)
        assert stripe_fake.balance == {"usd": 2000}
    done = refund_execute(refund_id=refund.pk)
    again = refund_execute(refund_id=refund.pk)

    # and in the end one Stripe refund of 1500, recorded once
    [made] = _objects(stripe_fake, "refund")
    assert (done.status, again.status, done.stripe_refund_id) == (
        RefundStatus.SUCCEEDED,
        RefundStatus.SUCCEEDED,
        made["id"],
    )
    assert made["amount"] == 1500
    assert len(_sent(stripe_fake, "/v1/refunds")) == 1
    assert stripe_fake.balance == {"usd": 500}
    assert balances() == _funded_balances(requester, available=500, refunds=0, clearing=-500)
    funded.refresh_from_db()
    assert funded.refunded_cents == 1500
    assert ledger_reconcile() == []


@pytest.mark.parametrize(
    ("status", "type_", "code"),
    [(402, "card_error", "expired_card"), (400, "invalid_request_error", "charge_disputed")],
)
def test_a_refund_stripe_refuses_returns_exactly_the_amount(
    requester, funded, stripe_fake, status, type_, code
):
    # given Stripe refuses the refund with a card error (402) or an invalid request (400)
    [refund] = refund_request(requester=requester, amount_cents=1500).refunds
    stripe_fake.refuse_next(path_prefix="/v1/refunds", code=code, status=status, type_=type_)

    # when the task runs, and a redelivered task runs again
    failed = refund_execute(refund_id=refund.pk)
    again = refund_execute(refund_id=refund.pk)

    # then the refund failed once, the 1500 are back on the requester's available balance and the
    # charge can be refunded again
    funded.refresh_from_db()
    assert (failed.status, failed.failure_code, again.status) == (
        RefundStatus.FAILED,
        code,
        RefundStatus.FAILED,
    )
    assert funded.refunded_cents == 0
    assert _objects(stripe_fake, "refund") == []
    assert stripe_fake.balance == {"usd": 2000}
    assert balances() == _funded_balances(requester, available=2000, refunds=0, clearing=-2000)
    assert LedgerTransaction.objects.filter(idempotency_key=f"refund:{refund.pk}:reverse").count() == 1
    assert ledger_reconcile() == []


def test_a_refund_stripe_fails_at_once_returns_exactly_the_amount_and_its_events_change_nothing(
    requester, funded, stripe_fake
):
    # given Stripe answers the refund create with a refund whose status is already ``failed``
    [refund] = refund_request(requester=requester, amount_cents=1500).refunds
    stripe_fake.refund_fail_next("expired_or_canceled_card")

    # when the task runs, then Stripe's events about that refund arrive (twice)
    failed = refund_execute(refund_id=refund.pk)
    events = [e for e in stripe_fake.events if e["type"].startswith("refund.")]
    outcomes = deliver(*events)
    redelivered = deliver(*[dict(e, id=e["id"] + "_again") for e in events])

    # then the refund failed with Stripe's reason, the 1500 came back to available exactly once and
    # the charge is refundable again; a later refund of the same charge works
    funded.refresh_from_db()
    [made] = _objects(stripe_fake, "refund")
    assert (failed.status, failed.failure_code) == (RefundStatus.FAILED, "expired_or_canceled_card")
    assert made["status"] == "failed"
    assert [e["type"] for e in events] == ["refund.created", "refund.failed"]
    assert outcomes == redelivered == [f"refund {refund.pk} already failed"] * 2
    assert funded.refunded_cents == 0
    assert stripe_fake.balance == {"usd": 2000}
    assert balances() == _funded_balances(requester, available=2000, refunds=0, clearing=-2000)
    assert LedgerTransaction.objects.filter(reference=f"refund:{refund.pk}").count() == 2  # reserve, reverse

    [second] = refund_request(requester=requester, amount_cents=2000).refunds
    assert refund_execute(refund_id=second.pk).status == RefundStatus.SUCCEEDED
    assert stripe_fake.balance == {"usd": 0}
    assert balances() == {}
    assert ledger_reconcile() == []


def test_a_refund_failed_at_once_whose_reply_was_lost_is_returned_once_by_webhook_or_retry(
    requester, funded, stripe_fake
):
    # given Stripe failed the refund at once, and the reply (and the SDK's retries) never reached us
    [refund] = refund_request(requester=requester, amount_cents=1500).refunds
    stripe_fake.refund_fail_next("lost_or_stolen_card")
    stripe_fake.fail_next("lost_reply", path_prefix="/v1/refunds")
    stripe_fake.fail_next("timeout", path_prefix="/v1/refunds", times=2)
    with pytest.raises(StripeTransientError):
        refund_execute(refund_id=refund.pk)

    # when the ``refund.failed`` webhook comes before the task's retry
    outcomes = deliver(*[e for e in stripe_fake.events if e["type"].startswith("refund.")])
    retried = refund_execute(refund_id=refund.pk)

    # then the money came back once, by the webhook; the retry found the refund final
    assert outcomes == [
        f"refund {refund.pk} failed: money back to available",
        f"refund {refund.pk} already failed",
    ]
    assert (retried.status, retried.failure_code) == (RefundStatus.FAILED, "lost_or_stolen_card")
    assert stripe_fake.balance == {"usd": 2000}
    assert balances() == _funded_balances(requester, available=2000, refunds=0, clearing=-2000)
    assert Refund.objects.get().attempts == 1  # the retry found it final before calling Stripe
    assert len([r for r in stripe_fake.requests if r[1] == "/v1/refunds"]) == 3  # 1 + the SDK's 2
    assert ledger_reconcile() == []


def test_an_idempotency_error_on_a_refund_keeps_the_money_in_transit(requester, funded, stripe_fake):
    # given Stripe already holds another request under this refund's key (a bug of ours)
    [refund] = refund_request(requester=requester, amount_cents=1500).refunds
    stripe_client.refund_create(
        payment_intent=funded.stripe_payment_intent_id,
        amount_cents=100,
        metadata={},
        idempotency_key=refund.stripe_key,
    )

    # when the task runs
    with pytest.raises(StripePermanentError) as err:
        refund_execute(refund_id=refund.pk)

    # then the key may have refunded the card, so nothing is returned: an admin must look
    refund.refresh_from_db()
    assert err.value.code == "idempotency_error"
    assert refund.status == RefundStatus.PROCESSING
    assert balances() == _funded_balances(requester, available=500, refunds=1500, clearing=-2000)
    assert ledger_reconcile() == []


def test_refund_webhooks_reordered_ahead_of_a_lost_reply_never_revive_a_failed_refund(
    requester, funded, stripe_fake
):
    # given Stripe made the refund but the reply was lost, and then the card network bounced it
    [refund] = refund_request(requester=requester, amount_cents=1500).refunds
    stripe_fake.fail_next("lost_reply", path_prefix="/v1/refunds")
    stripe_fake.fail_next("timeout", path_prefix="/v1/refunds", times=2)
    with pytest.raises(StripeTransientError):
        refund_execute(refund_id=refund.pk)
    [made] = _objects(stripe_fake, "refund")
    created = next(e for e in stripe_fake.events if e["type"] == "refund.created")
    updated, failed = stripe_fake.refund_fail(made["id"])

    # when the events arrive newest first, then duplicated, then the task retries (its stored
    # reply still says ``succeeded``)
    outcomes = deliver(failed, updated, created)
    replayed = deliver(*[dict(e, id=e["id"] + "_again") for e in (created, failed)])
    retried = refund_execute(refund_id=refund.pk)

    # then the refund is failed, the money came back once, and nothing turned it into a success
    assert outcomes == [
        f"refund {refund.pk} failed: money back to available",
        f"refund {refund.pk} already failed",
        f"refund {refund.pk} already failed",
    ]
    assert replayed == [f"refund {refund.pk} already failed"] * 2
    assert retried.status == RefundStatus.FAILED
    assert stripe_fake.balance == {"usd": 2000}
    assert balances() == _funded_balances(requester, available=2000, refunds=0, clearing=-2000)
    assert ledger_reconcile() == []
