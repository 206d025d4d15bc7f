"""Escrow helpers for the lead to wire into publish/accept/close, and the statement endpoint."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from marketplace.errors import Conflict
from payments.enums import AccountKind, OwnerKind
from payments.errors import InsufficientFunds
from payments.models import LedgerEntry, LedgerTransaction
from payments.services.escrow import (
    pay_worker_for_accept,
    pending_to_available_sweep,
    release_reserve,
    requester_freeze,
    reserve,
)
from payments.services.ledger import ledger_reconcile
from tests.factories import RequesterFactory, client_for
from tests.payments.factories import balance, balances, fund_requester, platform_balance

pytestmark = pytest.mark.django_db


def _req(requester) -> tuple[int, int]:
    return (
        balance(OwnerKind.REQUESTER, requester.pk, AccountKind.AVAILABLE),
        balance(OwnerKind.REQUESTER, requester.pk, AccountKind.RESERVED),
    )


def _wrk(worker) -> tuple[int, int]:
    return (
        balance(OwnerKind.WORKER, worker.pk, AccountKind.PENDING),
        balance(OwnerKind.WORKER, worker.pk, AccountKind.AVAILABLE),
    )


def test_reserve_accept_release_move_exact_amounts(requester, worker):
    # given a requester with 1000 available
    fund_requester(requester.pk, 1000)

    # when 600 is reserved, two answers are paid for (one retried), and the rest released
    reserve(requester=requester, amount_cents=600, idempotency_key="reserve:batch:1")
    reserve(requester=requester, amount_cents=600, idempotency_key="reserve:batch:1")  # retried
    pay_worker_for_accept(
        requester=requester, worker=worker, price_cents=100, fee_cents=10, idempotency_key="acc:1"
    )
    pay_worker_for_accept(
        requester=requester, worker=worker, price_cents=100, fee_cents=10, idempotency_key="acc:1"
    )
    pay_worker_for_accept(
        requester=requester, worker=worker, price_cents=50, fee_cents=0, idempotency_key="acc:2"
    )
    release_reserve(requester=requester, amount_cents=440, idempotency_key="close:batch:1")

    # then the worker has the prices, the platform the fee, the requester the rest
    assert _req(requester) == (840, 0)
    assert _wrk(worker) == (150, 0)
    assert platform_balance(AccountKind.FEE_REVENUE) == 10
    assert balances() == {
        "platform:stripe_clearing": -1000,
        f"requester:{requester.pk}:available": 840,
        f"worker:{worker.pk}:pending": 150,
        "platform:fee_revenue": 10,
    }
    assert ledger_reconcile() == []


def test_reserve_beyond_available_reports_the_shortfall_and_changes_nothing(requester):
    # given a requester with 100 available
    fund_requester(requester.pk, 100)
    before = balances()

    # when 250 is reserved
    with pytest.raises(InsufficientFunds) as err:
        reserve(requester=requester, amount_cents=250, idempotency_key="reserve:batch:2")

    # then it is refused with the shortfall, and nothing moved
    assert err.value.detail["shortfall_cents"] == 150
    assert _req(requester) == (100, 0)
    assert balances() == before
    assert before == {"platform:stripe_clearing": -100, f"requester:{requester.pk}:available": 100}


def test_a_frozen_requester_cannot_reserve_or_pay_but_can_release(requester, worker):
    # given a requester with 500 of 1000 reserved, frozen by a chargeback
    fund_requester(requester.pk, 1000)
    reserve(requester=requester, amount_cents=500, idempotency_key="r")
    requester_freeze(requester_id=requester.pk, reason="chargeback dp_1")
    requester_freeze(requester_id=requester.pk, reason="chargeback dp_2")  # already frozen: kept
    before = balances()

    # when they reserve, pay for an answer, and release the reserve
    with pytest.raises(Conflict) as no_reserve:
        reserve(requester=requester, amount_cents=100, idempotency_key="r2")
    with pytest.raises(Conflict) as no_pay:
        pay_worker_for_accept(
            requester=requester, worker=worker, price_cents=100, fee_cents=10, idempotency_key="a"
        )
    after_refusals = balances()
    release_reserve(requester=requester, amount_cents=500, idempotency_key="rel")

    # then the reserve and the payment are refused without moving anything; the release goes through
    assert (no_reserve.value.code, no_pay.value.code) == ("requester_frozen", "requester_frozen")
    assert requester.payment_state.frozen_reason == "chargeback dp_1"
    assert after_refusals == before
    assert before == {
        "platform:stripe_clearing": -1000,
        f"requester:{requester.pk}:available": 500,
        f"requester:{requester.pk}:reserved": 500,
    }
    assert _req(requester) == (1000, 0)
    assert _wrk(worker) == (0, 0)
    assert balances() == {"platform:stripe_clearing": -1000, f"requester:{requester.pk}:available": 1000}


@override_settings(EARNINGS_HOLD_DAYS=7)
def test_pending_earnings_become_available_after_the_hold_once(requester, worker):
    # given 300 earned eight days ago and 200 earned now, with a seven-day hold
    fund_requester(requester.pk, 1000)
    reserve(requester=requester, amount_cents=1000, idempotency_key="r")
    pay_worker_for_accept(
        requester=requester, worker=worker, price_cents=300, fee_cents=0, idempotency_key="a1"
    )
    LedgerEntry.objects.filter(transaction__idempotency_key="a1").update(
        created_at=timezone.now() - timedelta(days=8)
    )
    pay_worker_for_accept(
        requester=requester, worker=worker, price_cents=200, fee_cents=0, idempotency_key="a2"
    )

    # when the sweep runs twice now, then once eight days later
    moved = pending_to_available_sweep()
    again = pending_to_available_sweep()
    after_now = balances()
    later = pending_to_available_sweep(now=timezone.now() + timedelta(days=8))

    # then each amount moves from pending to available once, after its own hold
    assert (moved, again, later) == (300, 0, 200)
    assert after_now == {
        "platform:stripe_clearing": -1000,
        f"requester:{requester.pk}:reserved": 500,
        f"worker:{worker.pk}:pending": 200,
        f"worker:{worker.pk}:available": 300,
    }
    assert _wrk(worker) == (0, 500)
    assert balances() == {
        "platform:stripe_clearing": -1000,
        f"requester:{requester.pk}:reserved": 500,
        f"worker:{worker.pk}:available": 500,
    }
    assert LedgerTransaction.objects.filter(kind="hold_release").count() == 2
    assert ledger_reconcile() == []


def test_statement_lists_my_entries_newest_first_with_signed_lines(requester, requester_client, worker):
    # given a funding, a reserve and a paid answer, and a stranger's funding
    fund_requester(requester.pk, 1000)
    reserve(requester=requester, amount_cents=400, idempotency_key="r", reference="batch:7")
    pay_worker_for_accept(
        requester=requester, worker=worker, price_cents=90, fee_cents=10, idempotency_key="a"
    )
    stranger = RequesterFactory()
    fund_requester(stranger.pk, 50)
    before = balances()

    # when the requester and the worker read their statements
    body = requester_client.get("/api/v1/ledger").json()
    worker_body = client_for(worker.user).get("/api/v1/ledger").json()

    # then each sees only their own lines, signed, newest first; reading moved nothing
    assert [(r["kind"], r["reference"], r["lines"]) for r in body["results"]] == [
        (
            "accept",
            "",
            [{"role": "requester", "account": "reserved", "amount_cents": -10, "currency": "USD"}],
        ),
        (
            "accept",
            "",
            [{"role": "requester", "account": "reserved", "amount_cents": -90, "currency": "USD"}],
        ),
        (
            "reserve",
            "batch:7",
            [
                {"role": "requester", "account": "available", "amount_cents": -400, "currency": "USD"},
                {"role": "requester", "account": "reserved", "amount_cents": 400, "currency": "USD"},
            ],
        ),
        (
            "funding",
            "",
            [{"role": "requester", "account": "available", "amount_cents": 1000, "currency": "USD"}],
        ),
    ]
    assert [(r["kind"], r["lines"]) for r in worker_body["results"]] == [
        ("accept", [{"role": "worker", "account": "pending", "amount_cents": 90, "currency": "USD"}])
    ]
    assert balances() == before
    assert before == {
        "platform:stripe_clearing": -1050,
        f"requester:{requester.pk}:available": 600,
        f"requester:{requester.pk}:reserved": 300,
        f"worker:{worker.pk}:pending": 90,
        "platform:fee_revenue": 10,
        f"requester:{stranger.pk}:available": 50,
    }


def test_money_endpoints_need_a_role_and_a_login(anon):
    from tests.factories import UserFactory

    # about access, not money: nothing is funded and reading refused endpoints moves nothing
    no_role = client_for(UserFactory())
    assert no_role.get("/api/v1/balance").json()["code"] == "no_role"
    assert no_role.get("/api/v1/ledger").status_code == 403
    assert anon.get("/api/v1/balance").status_code in (401, 403)
    assert balances() == {}
