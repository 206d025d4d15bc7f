"""Payouts after things go wrong: stuck ones re-driven with the same key, transfer reversals, and
the admin's "mark failed"."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from marketplace.errors import Conflict
from marketplace.models import User
from payments.enums import AccountKind, OwnerKind, PayoutStatus
from payments.errors import PaymentProviderUnavailable
from payments.models import LedgerTransaction, Payout, PayoutAccount, StripeEvent
from payments.services.ledger import ledger_reconcile
from payments.services.payouts import payout_execute, payout_mark_failed, payout_request
from payments.stripe_client import StripeTransientError
from payments.tasks import payouts_requeue_stuck
from tests.payments.factories import balance, balances, deliver, fund_worker, platform_balance

pytestmark = pytest.mark.django_db


@pytest.fixture
def onboarded(worker, worker_client, stripe_fake):
    """A worker with a ready Connect account and 2000 cents available; 5000 at Stripe."""
    acct = worker_client.post("/api/v1/work/payout-account").json()["stripe_account_id"]
    stripe_fake.onboarding_complete(acct)
    PayoutAccount.objects.filter(worker=worker).update(is_ready=True)
    fund_worker(worker.pk, 2000)
    stripe_fake.balance["usd"] = 5000
    return worker


def _transfers(fake) -> list[dict]:
    return [o for o in fake.objects.values() if o["object"] == "transfer"]


def _available(worker) -> int:
    return balance(OwnerKind.WORKER, worker.pk, AccountKind.AVAILABLE)


def _age(payout: Payout, minutes: int = 60) -> None:
    Payout.objects.filter(pk=payout.pk).update(updated_at=timezone.now() - timedelta(minutes=minutes))


def test_a_stuck_processing_payout_is_requeued_with_the_same_key_and_paid_once(onboarded, stripe_fake):
    payout = payout_request(worker=onboarded, amount_cents=1500)
    stripe_fake.fail_next("lost_reply", path_prefix="/v1/transfers")
    stripe_fake.fail_next("timeout", path_prefix="/v1/transfers", times=2)
    with pytest.raises(StripeTransientError):
        payout_execute(payout_id=payout.pk)  # the task then gave up (or its worker died)

    too_fresh = payouts_requeue_stuck()
    _age(payout)
    first = payouts_requeue_stuck()
    second = payouts_requeue_stuck()
    _age(payout)  # even a paid payout aged past the cut-off is not picked again
    third = payouts_requeue_stuck()

    payout.refresh_from_db()
    assert (too_fresh, first, second, third) == ([], [payout.pk], [], [])
    assert (payout.status, payout.attempts) == (PayoutStatus.PAID, 2)
    assert len(_transfers(stripe_fake)) == 1
    assert len({body for _, path, body in stripe_fake.requests if path == "/v1/transfers"}) == 1
    assert stripe_fake.balance == {"usd": 3500}
    assert (_available(onboarded), platform_balance(AccountKind.PAYOUTS_IN_TRANSIT)) == (500, 0)
    assert balances() == {"platform:stripe_clearing": -500, f"worker:{onboarded.pk}:available": 500}
    assert LedgerTransaction.objects.filter(idempotency_key=f"payout:{payout.pk}:settle").count() == 1
    assert ledger_reconcile() == []


def test_requeue_while_stripe_is_still_down_moves_no_money_and_retries_later(onboarded, stripe_fake):
    payout = payout_request(worker=onboarded, amount_cents=1000)  # its task was never run: pending
    _age(payout)
    stripe_fake.fail_next("5xx", path_prefix="/v1/transfers", times=10_000)  # every retry fails too

    down = payouts_requeue_stuck()
    payout.refresh_from_db()
    mid = (payout.status, _available(onboarded), platform_balance(AccountKind.PAYOUTS_IN_TRANSIT))
    stripe_fake.faults_clear()
    _age(payout)
    up = payouts_requeue_stuck()

    payout.refresh_from_db()
    assert down == []  # the re-drive raised: nothing counted as queued, nothing moved
    assert mid == (PayoutStatus.PROCESSING, 1000, 1000)
    assert up == [payout.pk]
    assert payout.status == PayoutStatus.PAID
    assert len(_transfers(stripe_fake)) == 1
    assert stripe_fake.balance == {"usd": 4000}
    assert ledger_reconcile() == []
    assert balances() == {"platform:stripe_clearing": -1000, f"worker:{onboarded.pk}:available": 1000}


def _paid(worker, fake, amount) -> Payout:
    payout = payout_execute(payout_id=payout_request(worker=worker, amount_cents=amount).pk)
    assert payout.status == PayoutStatus.PAID
    return payout


def test_a_reversed_transfer_returns_the_money_to_available_once(onboarded, stripe_fake):
    payout = _paid(onboarded, stripe_fake, 1500)
    reversed_event = stripe_fake.transfer_reverse(payout.stripe_transfer_id)

    outcomes = deliver(reversed_event)
    redelivered = dict(reversed_event, id="evt_same_state_again")  # Stripe re-sending the state
    again = deliver(redelivered)

    payout.refresh_from_db()
    assert outcomes == [f"payout {payout.pk}: 1500 back to available"]
    assert again == [f"payout {payout.pk}: reversal of 1500 already applied"]
    assert (payout.status, payout.reversed_cents) == (PayoutStatus.REVERSED, 1500)
    assert _available(onboarded) == 2000
    assert platform_balance(AccountKind.STRIPE_CLEARING) == -2000
    assert stripe_fake.balance == {"usd": 5000}
    assert balances() == {"platform:stripe_clearing": -2000, f"worker:{onboarded.pk}:available": 2000}
    assert LedgerTransaction.objects.filter(kind="transfer_reversal").count() == 1
    assert ledger_reconcile() == []


def test_partial_reversals_delivered_out_of_order_add_up_once(onboarded, stripe_fake):
    payout = _paid(onboarded, stripe_fake, 1500)
    part = stripe_fake.transfer_reverse(payout.stripe_transfer_id, 500)
    rest = stripe_fake.transfer_reverse(payout.stripe_transfer_id, 400)

    outcomes = deliver(rest, part)

    payout.refresh_from_db()
    assert outcomes == [
        f"payout {payout.pk}: 900 back to available",
        f"payout {payout.pk}: reversal of 500 already applied",
    ]
    assert (payout.status, payout.reversed_cents) == (PayoutStatus.PAID, 900)
    assert _available(onboarded) == 500 + 900
    assert platform_balance(AccountKind.STRIPE_CLEARING) == -2000 + 1500 - 900
    assert balances() == {"platform:stripe_clearing": -1400, f"worker:{onboarded.pk}:available": 1400}
    assert ledger_reconcile() == []


def test_a_reversal_before_the_payout_is_recorded_waits_for_it(onboarded, stripe_fake):
    payout = payout_request(worker=onboarded, amount_cents=1000)
    stripe_fake.fail_next("lost_reply", path_prefix="/v1/transfers")
    stripe_fake.fail_next("timeout", path_prefix="/v1/transfers", times=2)
    with pytest.raises(StripeTransientError):
        payout_execute(payout_id=payout.pk)
    [transfer] = _transfers(stripe_fake)
    event = stripe_fake.transfer_reverse(transfer["id"])

    early = deliver(event)
    stored = StripeEvent.objects.get(stripe_id=event["id"])
    payout_execute(payout_id=payout.pk)  # the retry records the transfer as paid
    late = deliver()  # the beat sweep picks the waiting event up

    payout.refresh_from_db()
    assert early == [""] and stored.processed_at is None and late == []
    assert (
        StripeEvent.objects.get(stripe_id=event["id"]).outcome
        == f"payout {payout.pk}: 1000 back to available"
    )
    assert payout.status == PayoutStatus.REVERSED
    assert _available(onboarded) == 2000
    assert balances() == {"platform:stripe_clearing": -2000, f"worker:{onboarded.pk}:available": 2000}
    assert ledger_reconcile() == []


def _mark_failed_form(*payout_ids: int) -> dict:
    """The admin's confirmation of "mark failed" (the action's second page, with the reason)."""
    return {
        "action": "mark_failed",
        "_selected_action": list(payout_ids),
        "apply": "yes",
        "reason": "No transfer at Stripe.",
    }


def test_admin_mark_failed_returns_the_money_and_leaves_final_payouts_alone(onboarded, stripe_fake):
    stuck = payout_request(worker=onboarded, amount_cents=800)  # Stripe never reached, admin checked
    paid = _paid(onboarded, stripe_fake, 600)
    admin = User.objects.create_superuser("admin@example.com", "pw-Secret-123")
    client = Client()
    client.force_login(admin)

    response = client.post("/admin/payments/payout/", _mark_failed_form(stuck.pk, paid.pk), follow=True)
    again = client.post("/admin/payments/payout/", _mark_failed_form(stuck.pk), follow=True)

    stuck.refresh_from_db()
    paid.refresh_from_db()
    messages = [str(m) for m in response.context["messages"]]
    assert response.status_code == 200
    assert messages == [
        "Marked 1 payout(s) failed.",
        f"Not changed: {paid.pk}: Payout {paid.pk} is already paid.",
    ]
    assert [str(m) for m in again.context["messages"]] == [
        f"Not changed: {stuck.pk}: Payout {stuck.pk} is already failed."
    ]
    assert (stuck.status, stuck.failure_code) == (PayoutStatus.FAILED, "marked_failed")
    assert stuck.failure_message == "Marked failed in the admin by admin@example.com: No transfer at Stripe."
    assert paid.status == PayoutStatus.PAID
    assert _available(onboarded) == 2000 - 600
    assert platform_balance(AccountKind.PAYOUTS_IN_TRANSIT) == 0
    assert balances() == {"platform:stripe_clearing": -1400, f"worker:{onboarded.pk}:available": 1400}
    assert len(_transfers(stripe_fake)) == 1
    assert ledger_reconcile() == []


def test_reversals_of_unknown_or_failed_payouts_move_nothing(onboarded, stripe_fake):
    from payments.services.payouts import payout_mark_failed

    failed = payout_request(worker=onboarded, amount_cents=700)
    payout_mark_failed(payout_id=failed.pk, note="checked Stripe: never sent")
    transfer = {"object": "transfer", "amount": 700, "amount_reversed": 700, "currency": "usd"}
    events = [
        stripe_fake.event("transfer.reversed", {**transfer, "id": "tr_unknown", "metadata": {}}),
        stripe_fake.event(
            "transfer.reversed", {**transfer, "id": "tr_x", "metadata": {"payout_id": str(failed.pk)}}
        ),
    ]

    outcomes = deliver(*events)

    assert outcomes == [
        "ignored: no payout for transfer tr_unknown",
        f"ignored: payout {failed.pk} is failed",
    ]
    assert _available(onboarded) == 2000
    assert balances() == {"platform:stripe_clearing": -2000, f"worker:{onboarded.pk}:available": 2000}
    assert ledger_reconcile() == []


def _admin_mark_failed(*payout_ids: int) -> list[str]:
    client = Client()
    client.force_login(User.objects.create_superuser("admin@example.com", "pw-Secret-123"))
    response = client.post("/admin/payments/payout/", _mark_failed_form(*payout_ids), follow=True)
    assert response.status_code == 200
    return [str(m) for m in response.context["messages"]]


def _list_calls(fake) -> int:
    return len([r for r in fake.requests if r[:2] == ("GET", "/v1/transfers")])


def test_mark_failed_refuses_a_payout_stripe_did_transfer_and_the_retry_records_it_paid(
    onboarded, stripe_fake
):
    # given an earlier paid payout, then one whose transfer Stripe made while every reply was lost;
    # it has been stuck long enough for an admin to look
    fund_worker(onboarded.pk, 500)
    earlier = _paid(onboarded, stripe_fake, 500)
    payout = payout_request(worker=onboarded, amount_cents=1500)
    stripe_fake.fail_next("lost_reply", path_prefix="/v1/transfers")
    stripe_fake.fail_next("timeout", path_prefix="/v1/transfers", times=2)
    with pytest.raises(StripeTransientError):
        payout_execute(payout_id=payout.pk)
    _age(payout)
    made = next(t for t in _transfers(stripe_fake) if t["metadata"]["payout_id"] == str(payout.pk))
    waiting = balances()

    # when an admin marks it failed, then retries it
    messages = _admin_mark_failed(payout.pk)
    refused_state = (Payout.objects.get(pk=payout.pk).status, balances())
    done = payout_execute(payout_id=payout.pk)

    # then Stripe's transfer was found (among the worker's transfers), the money was not handed back
    # beside it, and the retry recorded it as paid
    assert messages == [
        f"Not changed: {payout.pk}: Stripe made transfer {made['id']} for payout {payout.pk}: "
        "retry it to record it as paid."
    ]
    assert refused_state == (PayoutStatus.PROCESSING, waiting)
    assert waiting == {
        "platform:stripe_clearing": -2500 + 500,
        f"worker:{onboarded.pk}:available": 500,
        "platform:payouts_in_transit": 1500,
    }
    assert (done.status, done.stripe_transfer_id) == (PayoutStatus.PAID, made["id"])
    assert earlier.status == PayoutStatus.PAID
    assert len(_transfers(stripe_fake)) == 2
    assert stripe_fake.balance == {"usd": 3000}
    assert balances() == {"platform:stripe_clearing": -500, f"worker:{onboarded.pk}:available": 500}
    assert ledger_reconcile() == []


def test_mark_failed_returns_the_money_of_a_stuck_payout_stripe_never_executed(onboarded, stripe_fake):
    # given a payout whose every attempt timed out before reaching Stripe, stuck for an hour
    payout = payout_request(worker=onboarded, amount_cents=1500)
    stripe_fake.fail_next("timeout", path_prefix="/v1/transfers", times=3)
    with pytest.raises(StripeTransientError):
        payout_execute(payout_id=payout.pk)
    _age(payout)

    # when an admin marks it failed, and a redelivered task runs afterwards
    messages = _admin_mark_failed(payout.pk)
    late = payout_execute(payout_id=payout.pk)

    # then Stripe was asked, had nothing, and the 1500 went back exactly; the late task sent nothing
    assert messages == ["Marked 1 payout(s) failed."]
    assert _list_calls(stripe_fake) == 1
    assert (late.status, late.failure_code) == (PayoutStatus.FAILED, "marked_failed")
    assert len([r for r in stripe_fake.requests if r[:2] == ("POST", "/v1/transfers")]) == 3
    assert _transfers(stripe_fake) == []
    assert stripe_fake.balance == {"usd": 5000}
    assert balances() == {"platform:stripe_clearing": -2000, f"worker:{onboarded.pk}:available": 2000}
    assert ledger_reconcile() == []


def test_mark_failed_refuses_a_payout_an_attempt_may_still_be_sending(onboarded, stripe_fake):
    # given a payout whose attempt just went to Stripe (processing, updated a minute ago)
    payout = payout_request(worker=onboarded, amount_cents=1500)
    stripe_fake.fail_next("timeout", path_prefix="/v1/transfers", times=3)
    with pytest.raises(StripeTransientError):
        payout_execute(payout_id=payout.pk)
    _age(payout, minutes=1)
    before = balances()

    # when an admin marks it failed
    with pytest.raises(Conflict) as err:
        payout_mark_failed(payout_id=payout.pk, note="looks stuck")

    # then refused before asking Stripe; nothing moved
    assert err.value.code == "payout_in_flight"
    assert err.value.message == (
        f"Payout {payout.pk} is being sent to Stripe; try again once it has been stuck for 15 minutes."
    )
    assert _list_calls(stripe_fake) == 0
    assert Payout.objects.get(pk=payout.pk).status == PayoutStatus.PROCESSING
    assert (
        balances()
        == before
        == {
            "platform:stripe_clearing": -2000,
            f"worker:{onboarded.pk}:available": 500,
            "platform:payouts_in_transit": 1500,
        }
    )


@pytest.mark.parametrize(
    ("fault", "error", "message"),
    [
        (
            "5xx",
            PaymentProviderUnavailable,
            "Stripe is unreachable, so the payout cannot be checked; nothing changed.",
        ),
        (
            "refused",
            Conflict,
            "Stripe refused to list the payout's transfers, so it cannot be checked; nothing changed.",
        ),
    ],
)
def test_mark_failed_while_stripe_cannot_be_checked_changes_nothing(
    onboarded, stripe_fake, fault, error, message
):
    # given a payout whose task never ran, and Stripe failing (5xx) or refusing (400) the check
    payout = payout_request(worker=onboarded, amount_cents=1500)
    if fault == "5xx":
        stripe_fake.fail_next("5xx", path_prefix="/v1/transfers", times=3)
    else:
        stripe_fake.refuse_next(path_prefix="/v1/transfers", code="parameter_invalid", status=400)
    before = balances()

    # when an admin marks it failed
    with pytest.raises(error) as err:
        payout_mark_failed(payout_id=payout.pk, note="never sent?")

    # then refused: without Stripe's word the money stays in transit
    assert err.value.message == message
    assert _list_calls(stripe_fake) == (3 if fault == "5xx" else 1)
    assert Payout.objects.get(pk=payout.pk).status == PayoutStatus.PENDING
    assert (
        balances()
        == before
        == {
            "platform:stripe_clearing": -2000,
            f"worker:{onboarded.pk}:available": 500,
            "platform:payouts_in_transit": 1500,
        }
    )
