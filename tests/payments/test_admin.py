"""The payments admin: every money row can be looked at, none can be edited, and the payout actions
go through the services."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings

from marketplace.models import User
from payments.enums import PayoutStatus
from payments.models import (
    Bonus,
    LedgerEntry,
    LedgerTransaction,
    Payout,
    PayoutAccount,
    Refund,
    RequesterAccountState,
    StripeEvent,
)
from payments.services.bonuses import bonus_pay
from payments.services.escrow import requester_freeze
from payments.services.ledger import ledger_reconcile
from payments.services.payouts import payout_request
from payments.services.refunds import refund_request
from tests.factories import AssignmentFactory, BatchFactory, ProjectFactory
from tests.payments.factories import balances, fund_by_card, fund_worker

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("admin@example.com", "pw-Secret-123"))
    return client


@pytest.fixture
def money_rows(requester, requester_client, worker, worker_client, stripe_fake):
    """One of each money row: a card funding (and its events), a refund, a bonus, a payout, a
    payout account and a frozen requester."""
    fund_by_card(requester_client, stripe_fake, 3000)
    refund_request(requester=requester, amount_cents=500)
    batch = BatchFactory(project=ProjectFactory(requester=requester))
    AssignmentFactory(batch=batch, task__batch=batch, worker=worker)
    with override_settings(PLATFORM_FEE_BPS=1000):
        bonus_pay(requester=requester, worker=worker, amount_cents=200, reason="careful work")
    acct = worker_client.post("/api/v1/work/payout-account").json()["stripe_account_id"]
    stripe_fake.onboarding_complete(acct)
    PayoutAccount.objects.filter(worker=worker).update(is_ready=True)
    fund_worker(worker.pk, 1000)
    payout_request(worker=worker, amount_cents=600)
    requester_freeze(requester_id=requester.pk, reason="chargeback dp_1 (fraudulent)")


def _money_rows_balances(requester, worker) -> dict[str, int]:
    """Every balance ``money_rows`` leaves: 3000 funded less a pending 500 refund and a 200 bonus
    plus its 20 fee; 1000 earned by the worker, 600 of it on its way out."""
    return {
        "platform:stripe_clearing": -3000 - 1000,
        f"requester:{requester.pk}:available": 3000 - 500 - 200 - 20,
        "platform:refunds": 500,
        f"worker:{worker.pk}:pending": 200,
        "platform:fee_revenue": 20,
        f"worker:{worker.pk}:available": 1000 - 600,
        "platform:payouts_in_transit": 600,
    }


@pytest.mark.parametrize(
    ("model", "title"),
    [
        (LedgerTransaction, lambda row: row.idempotency_key),
        (LedgerEntry, lambda row: f"entry {row.pk}: {row.amount_cents} USD"),
        (StripeEvent, lambda row: f"{row.type} {row.stripe_id}"),
        (PayoutAccount, lambda row: f"payout account of worker {row.worker_id}"),
        (Bonus, lambda row: f"bonus {row.pk}: 200 USD to worker {row.worker_id}"),
        (RequesterAccountState, lambda row: f"requester {row.requester_id} (frozen)"),
        (Refund, str),
        (Payout, str),
    ],
)
def test_each_money_row_shows_read_only_under_its_name(staff, money_rows, requester, worker, model, title):
    # given one row of the model
    row = model.objects.order_by("id").first()
    url = f"/admin/payments/{model._meta.model_name}/{row.pk}/change/"
    before = balances()

    # when an admin opens it
    response = staff.get(url)

    # then it is titled by the row, and shows no input for money
    page = response.content.decode()
    assert response.status_code == 200
    assert f"<h2>{title(row)}</h2>" in page
    for money_field in ("amount_cents", "balance_cents", "fee_cents", "status"):
        assert f'name="{money_field}"' not in page
    assert balances() == before
    assert before == _money_rows_balances(requester, worker)


def test_a_ledger_transaction_shows_its_entries_and_takes_no_new_ones(staff, money_rows, requester, worker):
    # given the bonus's posting
    posted = LedgerTransaction.objects.get(kind="bonus")

    # when an admin opens it
    page = staff.get(f"/admin/payments/ledgertransaction/{posted.pk}/change/").content.decode()

    # then both entries show, none can be added, and nothing moved
    entries = list(LedgerEntry.objects.filter(transaction=posted))
    assert [e.amount_cents for e in entries] == [200, 20]
    assert '<input type="hidden" name="entries-TOTAL_FORMS" value="2"' in page  # both, no blank form
    assert '<input type="hidden" name="entries-MAX_NUM_FORMS" value="0"' in page  # none can be added
    assert balances() == _money_rows_balances(requester, worker)


def test_admin_retry_pays_unfinished_payouts_once_and_skips_final_ones(
    staff, worker, worker_client, stripe_fake, django_capture_on_commit_callbacks
):
    # given a ready worker with 2000, one payout never sent and one already paid
    acct = worker_client.post("/api/v1/work/payout-account").json()["stripe_account_id"]
    stripe_fake.onboarding_complete(acct)
    PayoutAccount.objects.filter(worker=worker).update(is_ready=True)
    fund_worker(worker.pk, 2000)
    stripe_fake.balance["usd"] = 5000
    stuck = payout_request(worker=worker, amount_cents=800)
    with django_capture_on_commit_callbacks(execute=True):
        paid = payout_request(worker=worker, amount_cents=600)

    # when the admin retries both
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(
            "/admin/payments/payout/",
            {"action": "retry", "_selected_action": [stuck.pk, paid.pk]},
            follow=True,
        )

    # then only the unfinished one was queued, and it was paid once; the paid one is named
    stuck.refresh_from_db()
    assert [str(m) for m in response.context["messages"]] == [
        "Queued 1 payout(s).",
        f"Not queued: {paid.pk}: Payout {paid.pk} is already paid.",
    ]
    assert stuck.status == PayoutStatus.PAID
    assert len([o for o in stripe_fake.objects.values() if o["object"] == "transfer"]) == 2
    assert stripe_fake.balance == {"usd": 3600}
    assert balances() == {"platform:stripe_clearing": -600, f"worker:{worker.pk}:available": 600}
    assert ledger_reconcile() == []
