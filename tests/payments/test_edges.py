"""The rarer paths of the payments services: guards callers outside the API can hit, races that
lose a lookup, webhooks that are not for us (or not yet), and the beat tasks. Each test compares
all balances whole, so a refusal is shown to move nothing."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from marketplace.errors import Conflict, ValidationFailed
from payments import stripe_client
from payments.enums import AccountKind, EntryKind, FundingStatus, PayoutStatus, RefundStatus
from payments.errors import LedgerImbalance
from payments.models import (
    Account,
    FundingIntent,
    LedgerEntry,
    LedgerTransaction,
    PayoutAccount,
    Refund,
    StripeEvent,
)
from payments.services import ledger as ledger_service
from payments.services import refunds as refunds_service
from payments.services.bonuses import bonus_pay
from payments.services.escrow import pay_worker_for_accept, pending_to_available_sweep, reserve
from payments.services.funding import funding_create
from payments.services.ledger import (
    Leg,
    ledger_post,
    ledger_reconcile,
    ledger_reconcile_or_raise,
    platform_account,
    requester_account,
    worker_account,
)
from payments.services.payouts import payout_execute, payout_request
from payments.services.refunds import refund_execute, refund_request
from payments.services.webhooks import stripe_event_process
from payments.tasks import ledger_reconcile as ledger_reconcile_task
from payments.tasks import pending_to_available_sweep as sweep_task
from payments.tasks import refunds_requeue_stuck
from tests.factories import AssignmentFactory, BatchFactory, ProjectFactory
from tests.payments.factories import balances, deliver, fund_by_card, fund_requester, fund_worker

pytestmark = pytest.mark.django_db


# --- guards for callers that skip the API's serializers -------------------------------------------


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda r, w: funding_create(requester=r, amount_cents=1000, currency="EUR"), "currency"),
        (lambda r, w: refund_request(requester=r, amount_cents=True), "amount_cents"),
        (lambda r, w: refund_request(requester=r, amount_cents=100, currency="EUR"), "currency"),
        (lambda r, w: payout_request(worker=w, amount_cents=5000, currency="EUR"), "currency"),
        (
            lambda r, w: bonus_pay(requester=r, worker=w, amount_cents=100, reason="x", currency="EUR"),
            "currency",
        ),
        (lambda r, w: bonus_pay(requester=r, worker=w, amount_cents=100, reason="   "), "reason"),
        (lambda r, w: bonus_pay(requester=r, worker=w, amount_cents=100, reason="x" * 1001), "reason"),
    ],
)
def test_services_refuse_bad_input_and_move_nothing(requester, worker, stripe_fake, call, field):
    # given money on both sides
    fund_requester(requester.pk, 5000)
    fund_worker(worker.pk, 5000)
    before = balances()

    # when a service is called with input the API would have refused
    with pytest.raises(ValidationFailed) as err:
        call(requester, worker)

    # then a 400 naming the field, and nothing written anywhere
    assert err.value.status_code == 400
    assert list(err.value.detail) == [field]
    assert balances() == before
    assert before == {
        "platform:stripe_clearing": -10_000,
        f"requester:{requester.pk}:available": 5000,
        f"worker:{worker.pk}:available": 5000,
    }
    assert FundingIntent.objects.count() == 0
    assert stripe_fake.requests == []


@pytest.mark.parametrize(
    ("legs", "key", "message"),
    [
        ([], "k", "a posting needs at least one leg"),
        (None, "", "idempotency_key must be 1..200 characters"),
        (None, "k" * 201, "idempotency_key must be 1..200 characters"),
    ],
)
def test_malformed_postings_are_programming_errors(requester, legs, key, message):
    clearing = platform_account(AccountKind.STRIPE_CLEARING)
    available = requester_account(requester.pk, AccountKind.AVAILABLE)
    legs = [Leg(clearing, available, 100)] if legs is None else legs

    with pytest.raises(ValueError, match=message):
        ledger_post(legs=legs, idempotency_key=key, kind=EntryKind.FUNDING)

    assert balances() == {}
    assert LedgerTransaction.objects.count() == 0


def test_a_leg_between_currencies_is_refused(requester):
    usd = requester_account(requester.pk, AccountKind.AVAILABLE)
    eur = Account.objects.create(
        owner_kind=usd.owner_kind, owner_id=usd.owner_id, kind=AccountKind.RESERVED, currency="EUR"
    )

    with pytest.raises(ValueError, match="between currencies"):
        ledger_post(legs=[Leg(usd, eur, 1)], idempotency_key="k", kind=EntryKind.ADJUSTMENT)

    assert balances() == {}


def test_an_account_a_posting_passes_money_through_keeps_its_balance(requester, worker):
    # given a requester with 1000 available
    fund_requester(requester.pk, 1000)
    available = requester_account(requester.pk, AccountKind.AVAILABLE)
    reserved = requester_account(requester.pk, AccountKind.RESERVED)
    pending = worker_account(worker.pk, AccountKind.PENDING)

    # when one posting moves 300 available → reserved → worker pending
    ledger_post(
        legs=[Leg(available, reserved, 300), Leg(reserved, pending, 300)],
        idempotency_key="through",
        kind=EntryKind.ADJUSTMENT,
    )

    # then reserved, netting to zero, is untouched; both entries are written
    assert balances() == {
        "platform:stripe_clearing": -1000,
        f"requester:{requester.pk}:available": 700,
        f"worker:{worker.pk}:pending": 300,
    }
    assert LedgerEntry.objects.filter(transaction__idempotency_key="through").count() == 2
    assert ledger_reconcile() == []
    ledger_reconcile_or_raise()  # balanced: does not raise


# --- races where another request committed between our lookup and our insert ------------------------


def _miss_first(monkeypatch, module, name: str, misses: int) -> None:
    """Make ``module.<name>`` find nothing for its first ``misses`` calls: the other request's
    rows were not committed yet when we looked, so our insert hits its unique key."""
    real = getattr(module, name)
    calls = {"n": 0}

    def lookup(*args, **kwargs):
        calls["n"] += 1
        return None if calls["n"] <= misses else real(*args, **kwargs)

    monkeypatch.setattr(module, name, lookup)


def test_a_ledger_posting_that_loses_the_race_on_its_key_returns_the_winners(requester, monkeypatch):
    clearing = platform_account(AccountKind.STRIPE_CLEARING)
    available = requester_account(requester.pk, AccountKind.AVAILABLE)
    first = ledger_post(legs=[Leg(clearing, available, 400)], idempotency_key="k", kind=EntryKind.FUNDING)
    _miss_first(monkeypatch, ledger_service, "_existing", misses=2)  # both checks before the insert

    again = ledger_post(legs=[Leg(clearing, available, 400)], idempotency_key="k", kind=EntryKind.FUNDING)

    assert again.pk == first.pk
    assert balances() == {"platform:stripe_clearing": -400, f"requester:{requester.pk}:available": 400}
    assert LedgerTransaction.objects.count() == 1


def test_a_ledger_posting_that_loses_the_race_with_other_legs_is_a_conflict(requester, monkeypatch):
    clearing = platform_account(AccountKind.STRIPE_CLEARING)
    available = requester_account(requester.pk, AccountKind.AVAILABLE)
    ledger_post(legs=[Leg(clearing, available, 400)], idempotency_key="k", kind=EntryKind.FUNDING)
    _miss_first(monkeypatch, ledger_service, "_existing", misses=2)

    with pytest.raises(Conflict) as err:
        ledger_post(legs=[Leg(clearing, available, 999)], idempotency_key="k", kind=EntryKind.FUNDING)

    assert err.value.code == "idempotency_key_reused"
    assert balances() == {"platform:stripe_clearing": -400, f"requester:{requester.pk}:available": 400}


def test_a_funding_request_that_loses_the_race_on_its_key_resumes_the_winners_intent(
    requester, stripe_fake, monkeypatch
):
    # given a request with key "k" committed its intent just after our lookup missed it
    winner = funding_create(requester=requester, amount_cents=2500, idempotency_key="k")
    real_filter = FundingIntent.objects.filter
    missed = []

    def filter_missing_once(*args, **kwargs):
        found = real_filter(*args, **kwargs)
        if not missed:
            missed.append(True)
            return found.none()
        return found

    monkeypatch.setattr(FundingIntent.objects, "filter", filter_missing_once)

    # when our request inserts, hits the unique key and looks again
    ours = funding_create(requester=requester, amount_cents=2500, idempotency_key="k")

    # then it answers with the winner's intent and session; nothing else exists
    assert (ours.pk, ours.checkout_url, ours.status) == (winner.pk, winner.checkout_url, FundingStatus.OPEN)
    assert FundingIntent.objects.count() == 1
    assert len([o for o in stripe_fake.objects.values() if o["object"] == "checkout.session"]) == 1
    assert balances() == {}


def test_a_refund_request_that_loses_the_race_on_its_key_returns_the_winners_refunds(
    requester, requester_client, stripe_fake, monkeypatch
):
    fund_by_card(requester_client, stripe_fake, 2000)
    winner = refund_request(requester=requester, amount_cents=700, idempotency_key="k")
    _miss_first(monkeypatch, refunds_service, "_keyed", misses=2)  # before and under the locks

    ours = refund_request(requester=requester, amount_cents=700, idempotency_key="k")

    assert [r.pk for r in ours.refunds] == [r.pk for r in winner.refunds]
    assert balances() == {
        "platform:stripe_clearing": -2000,
        f"requester:{requester.pk}:available": 1300,
        "platform:refunds": 700,
    }


# --- two attempts of one payout or refund: the slower one finds the outcome recorded ----------------


def _attempt_overtaken(monkeypatch, name: str, run_other) -> None:
    """While our attempt's Stripe call is out, another attempt runs to the end (same key)."""
    real = getattr(stripe_client, name)

    def call(*args, **kwargs):
        monkeypatch.setattr(stripe_client, name, real)
        run_other()
        return real(*args, **kwargs)

    monkeypatch.setattr(stripe_client, name, call)


def test_an_overtaken_payout_attempt_records_nothing_twice(worker, worker_client, stripe_fake, monkeypatch):
    acct = worker_client.post("/api/v1/work/payout-account").json()["stripe_account_id"]
    stripe_fake.onboarding_complete(acct)
    PayoutAccount.objects.filter(worker=worker).update(is_ready=True)
    fund_worker(worker.pk, 2000)
    stripe_fake.balance["usd"] = 5000
    payout = payout_request(worker=worker, amount_cents=1500)
    _attempt_overtaken(monkeypatch, "transfer_create", lambda: payout_execute(payout_id=payout.pk))

    slower = payout_execute(payout_id=payout.pk)

    assert (slower.status, slower.attempts) == (PayoutStatus.PAID, 2)
    assert len([o for o in stripe_fake.objects.values() if o["object"] == "transfer"]) == 1
    assert stripe_fake.balance == {"usd": 3500}
    assert balances() == {"platform:stripe_clearing": -500, f"worker:{worker.pk}:available": 500}
    assert ledger_reconcile() == []


def test_an_overtaken_refund_attempt_records_nothing_twice(
    requester, requester_client, stripe_fake, monkeypatch
):
    fund_by_card(requester_client, stripe_fake, 2000)
    [refund] = refund_request(requester=requester, amount_cents=1500).refunds
    _attempt_overtaken(monkeypatch, "refund_create", lambda: refund_execute(refund_id=refund.pk))

    slower = refund_execute(refund_id=refund.pk)

    assert (slower.status, slower.attempts) == (RefundStatus.SUCCEEDED, 2)
    assert len([o for o in stripe_fake.objects.values() if o["object"] == "refund"]) == 1
    assert stripe_fake.balance == {"usd": 500}
    assert balances() == {"platform:stripe_clearing": -500, f"requester:{requester.pk}:available": 500}
    assert ledger_reconcile() == []


def test_a_refund_skips_charges_already_refunded_in_full(requester, requester_client, stripe_fake):
    # given two card fundings of 1000, the newer refunded in full
    older = fund_by_card(requester_client, stripe_fake, 1000)
    newer = fund_by_card(requester_client, stripe_fake, 1000)
    refund_request(requester=requester, amount_cents=1000, funding_id=newer.pk)

    # when the requester refunds 400 without naming a funding
    [refund] = refund_request(requester=requester, amount_cents=400).refunds

    # then it draws on the older charge, the only one with money left to refund
    assert (refund.funding_id, refund.amount_cents) == (older.pk, 400)
    assert sorted(FundingIntent.objects.values_list("id", "refunded_cents")) == [
        (older.pk, 400),
        (newer.pk, 1000),
    ]
    assert balances() == {
        "platform:stripe_clearing": -2000,
        f"requester:{requester.pk}:available": 600,
        "platform:refunds": 1400,
    }


# --- payouts and funding: the rest of the service contract ------------------------------------------


def test_a_payout_key_reused_for_another_amount_is_409_and_changes_nothing(
    worker, worker_client, stripe_fake
):
    acct = worker_client.post("/api/v1/work/payout-account").json()["stripe_account_id"]
    stripe_fake.onboarding_complete(acct)
    PayoutAccount.objects.filter(worker=worker).update(is_ready=True)
    fund_worker(worker.pk, 2000)
    first = worker_client.post(
        "/api/v1/work/payouts", {"amount_cents": 600}, format="json", HTTP_IDEMPOTENCY_KEY="p"
    )
    before = balances()

    reused = worker_client.post(
        "/api/v1/work/payouts", {"amount_cents": 700}, format="json", HTTP_IDEMPOTENCY_KEY="p"
    )

    assert reused.status_code == 409
    assert reused.json() == {
        "code": "idempotency_key_reused",
        "message": "This Idempotency-Key was used for a different payout.",
        "detail": {"payout_id": first.json()["id"]},
    }
    assert (
        balances()
        == before
        == {
            "platform:stripe_clearing": -2000,
            f"worker:{worker.pk}:available": 1400,
            "platform:payouts_in_transit": 600,
        }
    )


def test_an_idempotency_key_longer_than_200_characters_is_400(requester_client, requester, stripe_fake):
    # when a top-up is asked with a 201-character key
    response = requester_client.post(
        "/api/v1/funding", {"amount_cents": 1000}, format="json", HTTP_IDEMPOTENCY_KEY="k" * 201
    )

    # then a 400, and nothing created or moved
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "message": "Idempotency-Key is too long.",
        "detail": {"Idempotency-Key": ["At most 200 characters."]},
    }
    assert FundingIntent.objects.count() == 0
    assert stripe_fake.requests == []
    assert balances() == {}


def test_balance_endpoint_for_a_worker_only_user(worker, worker_client):
    # given a worker with 321 available
    fund_worker(worker.pk, 321)

    # when they read their balance
    response = worker_client.get("/api/v1/balance")

    # then only the worker side shows, and reading moved nothing
    assert response.status_code == 200
    assert response.json() == {
        "currency": "USD",
        "requester": None,
        "worker": {"available_cents": 321, "pending_cents": 0},
    }
    assert balances() == {"platform:stripe_clearing": -321, f"worker:{worker.pk}:available": 321}


@override_settings(PLATFORM_FEE_BPS=1000)
def test_a_bonus_too_small_to_carry_a_fee_moves_only_the_amount(requester, worker):
    # given a worker who answered for the requester, who has 100 available
    batch = BatchFactory(project=ProjectFactory(requester=requester))
    AssignmentFactory(batch=batch, task__batch=batch, worker=worker)
    fund_requester(requester.pk, 100)

    # when a 4-cent bonus is paid (10% of 4 rounds to 0)
    bonus = bonus_pay(requester=requester, worker=worker, amount_cents=4, reason="thanks")

    # then no fee leg: 4 to the worker's pending balance, nothing to fee revenue
    assert (bonus.amount_cents, bonus.fee_cents) == (4, 0)
    assert balances() == {
        "platform:stripe_clearing": -100,
        f"requester:{requester.pk}:available": 96,
        f"worker:{worker.pk}:pending": 4,
    }
    assert LedgerEntry.objects.filter(transaction__idempotency_key=f"bonus:{bonus.pk}").count() == 1


@override_settings(EARNINGS_HOLD_DAYS=7)
def test_the_hold_sweep_task_leaves_fresh_earnings_pending(requester, worker):
    # given earnings credited just now (inside the hold)
    fund_requester(requester.pk, 1000)
    reserve(requester=requester, amount_cents=1000, idempotency_key="r")
    pay_worker_for_accept(
        requester=requester, worker=worker, price_cents=300, fee_cents=0, idempotency_key="a"
    )
    before = balances()

    # when the beat task runs, and the service is asked again 8 days later
    moved_now = sweep_task.delay().get()
    moved_later = pending_to_available_sweep(now=timezone.now() + timedelta(days=8))

    # then nothing matured at first; the whole 300 later
    assert (moved_now, moved_later) == (0, 300)
    assert before[f"worker:{worker.pk}:pending"] == 300
    assert balances() == {
        "platform:stripe_clearing": -1000,
        f"requester:{requester.pk}:reserved": 700,
        f"worker:{worker.pk}:available": 300,
    }


def test_the_reconcile_task_logs_each_mismatch_and_raises(requester, caplog):
    # given a balanced ledger whose requester balance is then edited behind it, 900 to 1000
    fund_requester(requester.pk, 900)
    assert ledger_reconcile_task.delay().get() == 0  # balanced
    assert balances() == {"platform:stripe_clearing": -900, f"requester:{requester.pk}:available": 900}
    Account.objects.filter(owner_id=requester.pk, kind=AccountKind.AVAILABLE).update(balance_cents=1000)

    # when the beat task runs
    with caplog.at_level(logging.ERROR, logger="payments.tasks"), pytest.raises(LedgerImbalance):
        ledger_reconcile_task.delay()

    # then it logs each mismatch and raises, and "repairs" no balance
    assert [r.getMessage() for r in caplog.records if r.name == "payments.tasks"] == [
        f"ledger mismatch: {line}" for line in ledger_reconcile()
    ]
    assert len(ledger_reconcile()) == 2
    assert balances() == {"platform:stripe_clearing": -900, f"requester:{requester.pk}:available": 1000}


# --- webhooks that are not for us, not paid yet, or early -------------------------------------------


def test_checkout_events_without_our_funding_or_unpaid_change_nothing(
    requester, requester_client, stripe_fake
):
    # given a session paid by an asynchronous method (not paid at completion), and events from
    # another integration on the same Stripe account (no funding_id)
    response = requester_client.post("/api/v1/funding", {"amount_cents": 2500}, format="json")
    intent = FundingIntent.objects.get(pk=response.json()["id"])
    pi_succeeded, completed = stripe_fake.checkout_complete(intent.stripe_session_id)
    unpaid = json.loads(json.dumps(completed))
    unpaid["id"], unpaid["data"]["object"]["payment_status"] = "evt_unpaid", "unpaid"
    foreign_session = json.loads(json.dumps(completed))
    foreign_session["id"], foreign_session["data"]["object"]["metadata"] = "evt_foreign_cs", {}
    foreign_pi = json.loads(json.dumps(pi_succeeded))
    foreign_pi["id"], foreign_pi["data"]["object"]["metadata"] = "evt_foreign_pi", {"funding_id": "abc"}

    # when they are delivered, then the asynchronous payment succeeds
    outcomes = deliver(unpaid, foreign_session, foreign_pi)
    before = balances()
    succeeded = dict(completed, id="evt_async_ok", type="checkout.session.async_payment_succeeded")
    paid = deliver(succeeded)

    # then nothing moved until the payment succeeded, and then exactly 2500 once
    assert outcomes == ["ignored: not paid yet", "ignored: no funding_id", "ignored: no funding_id"]
    assert before == {}
    assert paid == ["credited"]
    assert balances() == {"platform:stripe_clearing": -2500, f"requester:{requester.pk}:available": 2500}


def test_a_paid_event_for_an_unknown_funding_is_refused_not_credited(requester, stripe_fake):
    event = stripe_fake.event(
        "payment_intent.succeeded",
        {
            "id": "pi_x",
            "object": "payment_intent",
            "amount_received": 2500,
            "currency": "usd",
            "metadata": {"funding_id": "999999"},
        },
    )

    outcomes = deliver(event)

    assert outcomes == ["refused: funding_unknown: Unknown funding."]
    assert balances() == {}


def test_an_account_update_before_the_account_is_saved_waits_for_it(
    worker, worker_client, stripe_fake, monkeypatch
):
    # given Stripe made the Connect account and finished onboarding before we saved its id (crash)
    real = stripe_client.account_create
    made = []

    def create_then_crash(**kwargs):
        made.append(real(**kwargs))
        monkeypatch.setattr(stripe_client, "account_create", real)
        raise RuntimeError("crash")

    monkeypatch.setattr(stripe_client, "account_create", create_then_crash)
    with pytest.raises(RuntimeError):
        worker_client.post("/api/v1/work/payout-account")
    event = stripe_fake.onboarding_complete(made[0]["id"])

    # when the account.updated event arrives, then the worker retries, then the sweep runs
    early = deliver(event)
    stored = StripeEvent.objects.get(stripe_id=event["id"])
    worker_client.post("/api/v1/work/payout-account")
    deliver()

    # then the event waited, unprocessed, and applied once the account was known
    assert early == [""] and stored.processed_at is None
    assert StripeEvent.objects.get(stripe_id=event["id"]).outcome == "ready=True"
    assert PayoutAccount.objects.get(worker=worker).is_ready is True
    assert balances() == {}


def test_a_processed_event_run_again_returns_its_first_outcome(requester, requester_client, stripe_fake):
    response = requester_client.post("/api/v1/funding", {"amount_cents": 2500}, format="json")
    intent = FundingIntent.objects.get(pk=response.json()["id"])
    _, completed = stripe_fake.checkout_complete(intent.stripe_session_id)
    deliver(completed)
    stored = StripeEvent.objects.get(stripe_id=completed["id"])

    again = stripe_event_process(event_id=stored.pk)  # a redelivered task

    stored.refresh_from_db()
    assert again == stored.outcome == "credited"
    assert stored.attempts == 1
    assert balances() == {"platform:stripe_clearing": -2500, f"requester:{requester.pk}:available": 2500}


def test_a_signed_body_that_is_not_json_is_refused_and_nothing_is_stored(anon):
    # given a correctly signed body that is not JSON
    body = "not json at all"

    # when it is posted to the webhook
    response = anon.post(
        "/api/v1/stripe/webhook",
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=stripe_client.webhook_sign(body),
    )

    # then a 400 that says what is wrong with it (the signature is fine), and nothing stored or moved
    assert response.status_code == 400
    assert response.json() == {
        "code": "malformed_event",
        "message": "The event is not valid JSON: Expecting value: line 1 column 1 (char 0).",
        "detail": {},
    }
    assert StripeEvent.objects.count() == 0
    assert balances() == {}


def test_a_refund_whose_task_cannot_be_queued_waits_reserved_for_the_sweep(
    requester, requester_client, stripe_fake, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    # given the broker is down when the refund is requested
    fund_by_card(requester_client, stripe_fake, 2000)

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr("payments.tasks.refund_execute.delay", broker_down)
    with (
        caplog.at_level(logging.ERROR, logger="payments.services.refunds"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = requester_client.post("/api/v1/refunds", {"amount_cents": 700}, format="json")
    refund = Refund.objects.get()
    waiting = balances()

    # when the broker is back and the requeue sweep finds the refund stuck
    monkeypatch.undo()
    Refund.objects.filter(pk=refund.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    requeued = refunds_requeue_stuck()

    # then the request was accepted with the money reserved, and the sweep refunded it once
    refund.refresh_from_db()
    assert response.status_code == 202
    assert [r.getMessage() for r in caplog.records] == [
        f"could not queue refund {refund.pk} now; the requeue sweep will retry it"
    ]
    assert waiting == {
        "platform:stripe_clearing": -2000,
        f"requester:{requester.pk}:available": 1300,
        "platform:refunds": 700,
    }
    assert (requeued, refund.status) == ([refund.pk], RefundStatus.SUCCEEDED)
    assert stripe_fake.balance == {"usd": 1300}
    assert balances() == {"platform:stripe_clearing": -1300, f"requester:{requester.pk}:available": 1300}
