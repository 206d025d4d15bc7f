"""Payouts and frozen requesters in the admin: retry, mark failed, freeze and unfreeze are actions
calling the payments services; the flags and amounts are never typed in.

(The retry action's ledger movement is asserted in ``tests/payments/test_admin.py``, the mark-failed
refusals in ``tests/payments/test_payout_robustness.py``.)"""

from __future__ import annotations

import pytest

from marketplace.enums import BatchStatus
from payments.enums import PayoutStatus
from payments.models import PayoutAccount, RequesterAccountState, RequesterFreezeEvent
from payments.services.escrow import requester_freeze
from payments.services.payouts import payout_request
from tests.admin.helpers import act, change_form_data, messages_of
from tests.factories import BatchFactory, fund, make_tasks
from tests.payments.factories import balances, fund_worker

pytestmark = pytest.mark.django_db


@pytest.fixture
def onboarded(worker, worker_client, stripe_fake):
    """A worker with a ready Connect account and 2000 cents available."""
    acct = worker_client.post("/api/v1/work/payout-account").json()["stripe_account_id"]
    stripe_fake.onboarding_complete(acct)
    PayoutAccount.objects.filter(worker=worker).update(is_ready=True)
    fund_worker(worker.pk, 2000)
    return worker


def test_mark_failed_asks_for_a_reason_then_returns_the_money(onboarded, staff, stripe_fake):
    # given a payout Stripe never received
    payout = payout_request(worker=onboarded, amount_cents=800)
    reserved = {
        "platform:stripe_clearing": -2000,
        f"worker:{onboarded.pk}:available": 1200,
        "platform:payouts_in_transit": 800,
    }
    assert balances() == reserved

    # when the admin picks "mark failed": a page asks why; then confirms
    page = act(staff, "/admin/payments/payout/", "mark_failed", [payout.pk])
    after_page = (balances(), type(payout).objects.get(pk=payout.pk).status)
    done = act(staff, "/admin/payments/payout/", "mark_failed", [payout.pk], reason="No transfer at Stripe.")

    # then nothing moved before the confirmation; afterwards the 800 is back, the reason recorded
    assert page.status_code == 200 and b'name="reason"' in page.content
    assert after_page == (reserved, PayoutStatus.PENDING)
    assert messages_of(done) == ["Marked 1 payout(s) failed."]
    payout.refresh_from_db()
    assert (payout.status, payout.failure_code, payout.failure_message) == (
        PayoutStatus.FAILED,
        "marked_failed",
        "Marked failed in the admin by admin@example.com: No transfer at Stripe.",
    )
    assert balances() == {"platform:stripe_clearing": -2000, f"worker:{onboarded.pk}:available": 2000}


def test_freeze_and_unfreeze_record_who_and_why_and_gate_the_money(
    requester, requester_client, staff, admin_user
):
    # given a requester with a funded draft batch
    batch = BatchFactory(project__requester=requester, price_cents=50, overlap=1)
    make_tasks(batch, 1)
    fund(requester, 10_000)
    money = balances()

    # when an admin freezes them from the requester admin, with a reason
    page = act(staff, "/admin/marketplace/requester/", "freeze", [requester.pk])
    froze = act(staff, "/admin/marketplace/requester/", "freeze", [requester.pk], reason="Card dispute dp_9.")
    again = act(staff, "/admin/marketplace/requester/", "freeze", [requester.pk], reason="Twice.")
    refused = requester_client.post(f"/api/v1/batches/{batch.pk}/publish")
    # and unfreezes them from the frozen requesters' list, with a reason
    state = RequesterAccountState.objects.get(requester=requester)
    unfroze = act(
        staff, "/admin/payments/requesteraccountstate/", "unfreeze", [state.pk], reason="Dispute won."
    )
    published = requester_client.post(f"/api/v1/batches/{batch.pk}/publish")

    # then each step went through the service, with its event row; no money moved until publishing
    assert page.status_code == 200 and b'name="reason"' in page.content
    assert messages_of(froze) == ["Froze 1 requester(s)."]
    assert messages_of(again) == [
        f"Not changed: {requester.pk}: Requester {requester.pk} is already frozen: Card dispute dp_9."
    ]
    assert (refused.status_code, refused.json()["code"]) == (409, "requester_frozen")
    assert messages_of(unfroze) == ["Unfroze 1 requester(s)."]
    assert list(
        RequesterFreezeEvent.objects.values_list("requester_id", "is_frozen", "reason", "by_user_id")
    ) == [
        (requester.pk, True, "Card dispute dp_9.", admin_user.pk),
        (requester.pk, False, "Dispute won.", admin_user.pk),
    ]
    state.refresh_from_db()
    assert (state.is_frozen, state.frozen_reason) == (False, "Card dispute dp_9.")
    assert published.status_code == 200 and published.json()["status"] == BatchStatus.OPEN
    assert money == {"platform:stripe_clearing": -10_000, f"requester:{requester.pk}:available": 10_000}


def test_the_frozen_flag_cannot_be_edited_by_hand(requester, staff, admin_user):
    # given a requester frozen by a chargeback
    requester_freeze(requester_id=requester.pk, reason="chargeback dp_1")
    state = RequesterAccountState.objects.get(requester=requester)
    url = f"/admin/payments/requesteraccountstate/{state.pk}/change/"

    # when an admin posts the state unfrozen by hand
    page = staff.get(url)
    edit = staff.post(url, change_form_data(page, is_frozen="", frozen_reason=""))
    still_frozen = RequesterAccountState.objects.get(pk=state.pk).is_frozen
    # and then unfreezes twice through the action
    first = act(staff, "/admin/payments/requesteraccountstate/", "unfreeze", [state.pk], reason="Settled.")
    second = act(staff, "/admin/payments/requesteraccountstate/", "unfreeze", [state.pk], reason="Again.")

    # then the form is refused; the first unfreeze is recorded, the second named
    assert 'name="is_frozen"' not in page.content.decode()
    assert (edit.status_code, still_frozen) == (403, True)
    assert messages_of(first) == ["Unfroze 1 requester(s)."]
    assert messages_of(second) == [f"Not changed: {state.pk}: Requester {requester.pk} is not frozen."]
    assert list(RequesterFreezeEvent.objects.values_list("is_frozen", "reason", "by_user_id")) == [
        (True, "chargeback dp_1", None),
        (False, "Settled.", admin_user.pk),
    ]
