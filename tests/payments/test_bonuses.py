"""Bonuses: requester available → worker pending plus the platform fee, to workers who worked for them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from crowd.enums import AssignmentStatus
from marketplace.selectors import worker_pseudonym
from payments.enums import AccountKind, OwnerKind
from payments.models import Bonus, LedgerEntry, LedgerTransaction
from payments.services.escrow import pending_to_available_sweep, requester_freeze
from payments.services.ledger import ledger_reconcile
from tests.factories import (
    AssignmentFactory,
    BatchFactory,
    ProjectFactory,
    RequesterFactory,
    WorkerFactory,
    client_for,
    iso,
)
from tests.payments.factories import balance, balances, fund_requester, platform_balance

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fee_10_percent")]


@pytest.fixture
def fee_10_percent():
    with override_settings(PLATFORM_FEE_BPS=1000):
        yield


def _worked(worker, requester, *, submitted: bool = True):
    """An assignment of ``worker`` in a batch of ``requester``: answered unless ``submitted=False``."""
    batch = BatchFactory(project=ProjectFactory(requester=requester))
    return AssignmentFactory(
        batch=batch,
        task__batch=batch,
        worker=worker,
        status=AssignmentStatus.SUBMITTED if submitted else AssignmentStatus.ACTIVE,
        submitted_at=timezone.now() if submitted else None,
    )


def _state(requester, worker) -> tuple:
    return (
        balance(OwnerKind.REQUESTER, requester.pk, AccountKind.AVAILABLE),
        balance(OwnerKind.WORKER, worker.pk, AccountKind.PENDING),
        platform_balance(AccountKind.FEE_REVENUE),
        Bonus.objects.count(),
        LedgerTransaction.objects.count(),
        balances(),
    )


def _body(bonus: Bonus) -> dict:
    return {
        "id": bonus.pk,
        "worker": worker_pseudonym(requester_id=bonus.requester_id, worker_id=bonus.worker_id),
        "amount_cents": bonus.amount_cents,
        "fee_cents": bonus.fee_cents,
        "currency": "USD",
        "reason": bonus.reason,
        "created_at": iso(bonus.created_at),
    }


def test_a_bonus_by_pseudonym_moves_the_amount_and_the_fee_once(requester, requester_client, worker):
    # given a worker who answered for a requester with 1000 available
    _worked(worker, requester)
    fund_requester(requester.pk, 1000)
    pseudonym = worker_pseudonym(requester_id=requester.pk, worker_id=worker.pk)
    body = {"worker": pseudonym, "amount_cents": 200, "reason": "Careful work on the hard items"}

    # when a 200 bonus is sent twice with one key, then with that key for another amount
    first = requester_client.post("/api/v1/bonuses", body, format="json", HTTP_IDEMPOTENCY_KEY="b1")
    again = requester_client.post("/api/v1/bonuses", body, format="json", HTTP_IDEMPOTENCY_KEY="b1")
    reused = requester_client.post(
        "/api/v1/bonuses", {**body, "amount_cents": 300}, format="json", HTTP_IDEMPOTENCY_KEY="b1"
    )

    # then one bonus of 200 plus the 20 fee, and the reused key is refused
    bonus = Bonus.objects.get()
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json() == _body(bonus)
    assert (bonus.amount_cents, bonus.fee_cents, bonus.worker_id) == (200, 20, worker.pk)
    assert reused.status_code == 409
    assert reused.json() == {
        "code": "idempotency_key_reused",
        "message": "This Idempotency-Key was used for a different bonus.",
        "detail": {"bonus_id": bonus.pk},
    }
    everything = {
        "platform:stripe_clearing": -1000,
        f"requester:{requester.pk}:available": 780,
        f"worker:{worker.pk}:pending": 200,
        "platform:fee_revenue": 20,
    }
    assert _state(requester, worker) == (780, 200, 20, 1, 2, everything)
    posting = LedgerTransaction.objects.get(idempotency_key=f"bonus:{bonus.pk}")
    assert sorted(LedgerEntry.objects.filter(transaction=posting).values_list("amount_cents", flat=True)) == [
        20,
        200,
    ]
    assert ledger_reconcile() == []


def test_a_bonus_by_worker_id_without_a_key_and_the_hold_applies(requester, requester_client, worker):
    # given a worker who answered for a requester with 1000 available
    _worked(worker, requester)
    fund_requester(requester.pk, 1000)

    # when a 105 bonus is sent by worker id, and the hold period passes
    response = requester_client.post(
        "/api/v1/bonuses", {"worker_id": worker.pk, "amount_cents": 105, "reason": "Thanks"}, format="json"
    )
    pending_to_available_sweep(now=timezone.now() + timedelta(days=30))

    # then 105 plus the rounded-up fee of 11 moved, and the 105 is now available to the worker
    assert response.status_code == 201
    assert (response.json()["amount_cents"], response.json()["fee_cents"]) == (105, 11)  # 10.5 rounds up
    assert balance(OwnerKind.REQUESTER, requester.pk, AccountKind.AVAILABLE) == 1000 - 116
    assert balance(OwnerKind.WORKER, worker.pk, AccountKind.PENDING) == 0
    assert balance(OwnerKind.WORKER, worker.pk, AccountKind.AVAILABLE) == 105
    assert platform_balance(AccountKind.FEE_REVENUE) == 11
    assert balances() == {
        "platform:stripe_clearing": -1000,
        f"requester:{requester.pk}:available": 884,
        f"worker:{worker.pk}:available": 105,
        "platform:fee_revenue": 11,
    }


def test_a_bonus_beyond_available_is_409_with_the_shortfall_and_changes_nothing(
    requester, requester_client, worker
):
    # given a worker who answered for a requester with 100 available
    _worked(worker, requester)
    fund_requester(requester.pk, 100)
    before = _state(requester, worker)

    # when a 100 bonus (110 with the fee) is sent
    response = requester_client.post(
        "/api/v1/bonuses", {"worker_id": worker.pk, "amount_cents": 100, "reason": "Thanks"}, format="json"
    )

    # then a 409 with the shortfall, and nothing moved
    assert response.status_code == 409
    assert response.json() == {
        "code": "insufficient_funds",
        "message": "The balance is too low for this movement.",
        "detail": {"account": "available", "balance_cents": 100, "shortfall_cents": 10, "currency": "USD"},
    }
    assert _state(requester, worker) == before
    assert before[:5] == (100, 0, 0, 0, 1)
    assert before[5] == {"platform:stripe_clearing": -100, f"requester:{requester.pk}:available": 100}


def test_workers_who_never_worked_for_the_requester_are_404(requester, requester_client, worker):
    # given a requester with 1000 available, and workers who never answered for them
    fund_requester(requester.pk, 1000)
    _worked(worker, RequesterFactory())  # worked for someone else
    only_claimed = WorkerFactory()
    _worked(only_claimed, requester, submitted=False)  # claimed, never answered
    stranger = WorkerFactory()
    before = _state(requester, worker)

    # when a bonus is sent to each of them, by id or pseudonym
    responses = [
        requester_client.post(
            "/api/v1/bonuses", {**who, "amount_cents": 100, "reason": "Thanks"}, format="json"
        )
        for who in (
            {"worker_id": worker.pk},
            {"worker_id": only_claimed.pk},
            {"worker_id": stranger.pk},
            {"worker_id": 10**9},
            {"worker": worker_pseudonym(requester_id=requester.pk, worker_id=worker.pk)},
            {"worker": "w-000000000000"},
        )
    ]

    # then each is 404, and nothing moved
    for response in responses:
        assert response.status_code == 404
        assert response.json() == {
            "code": "worker_not_found",
            "message": "No worker by that name has worked for you.",
            "detail": {},
        }
    assert _state(requester, worker) == before
    assert balances() == {"platform:stripe_clearing": -1000, f"requester:{requester.pk}:available": 1000}


def test_a_frozen_requester_cannot_pay_a_bonus(requester, requester_client, worker):
    # given a requester with 1000 available, frozen by a chargeback
    _worked(worker, requester)
    fund_requester(requester.pk, 1000)
    requester_freeze(requester_id=requester.pk, reason="chargeback dp_1")
    before = _state(requester, worker)

    # when they send a bonus
    response = requester_client.post(
        "/api/v1/bonuses", {"worker_id": worker.pk, "amount_cents": 100, "reason": "Thanks"}, format="json"
    )

    # then a 409, and nothing moved
    assert response.status_code == 409
    assert response.json()["code"] == "requester_frozen"
    assert _state(requester, worker) == before
    assert balances() == {"platform:stripe_clearing": -1000, f"requester:{requester.pk}:available": 1000}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount_cents": 100}, "reason"),
        ({"amount_cents": 100, "reason": "   "}, "reason"),
        ({"amount_cents": 100, "reason": "x" * 1001}, "reason"),
        ({"amount_cents": 0, "reason": "Thanks"}, "amount_cents"),
        ({"amount_cents": -1, "reason": "Thanks"}, "amount_cents"),
        ({"amount_cents": 100_001, "reason": "Thanks"}, "amount_cents"),
        ({"amount_cents": 100, "reason": "Thanks", "currency": "EUR"}, "currency"),
        ({"amount_cents": 100, "reason": "Thanks", "worker": "w-x", "worker_id": 1}, "worker"),
        ({"amount_cents": 100, "reason": "Thanks", "no_worker": True}, "worker"),
    ],
)
def test_bad_bonus_requests_are_400_and_change_nothing(requester, requester_client, worker, body, field):
    # given a worker who answered for a requester with 200000 available
    _worked(worker, requester)
    fund_requester(requester.pk, 200_000)
    before = _state(requester, worker)
    if "worker" not in body and "no_worker" not in body:
        body = {**body, "worker_id": worker.pk}
    body.pop("no_worker", None)

    # when a malformed bonus is sent
    response = requester_client.post("/api/v1/bonuses", body, format="json")

    # then a 400 naming the field, and nothing moved
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert field in response.json()["detail"]
    assert _state(requester, worker) == before
    assert balances() == {
        "platform:stripe_clearing": -200_000,
        f"requester:{requester.pk}:available": 200_000,
    }


def test_bonus_lists_show_each_side_only_its_own(
    requester, requester_client, worker, worker_client, django_assert_num_queries
):
    # given two requesters with 10000 each, and bonuses from both, most of them to our worker
    other_requester, other_worker = RequesterFactory(), WorkerFactory()
    for w in (worker, other_worker):
        _worked(w, requester)
    _worked(worker, other_requester)
    fund_requester(requester.pk, 10_000)
    fund_requester(other_requester.pk, 10_000)
    sent = [
        requester_client.post(
            "/api/v1/bonuses",
            {"worker_id": w.pk, "amount_cents": 100 * (i + 1), "reason": f"r{i}"},
            format="json",
        ).json()
        for i, w in enumerate((worker, other_worker, worker))
    ]
    theirs = client_for(other_requester.user).post(
        "/api/v1/bonuses", {"worker_id": worker.pk, "amount_cents": 50, "reason": "from them"}, format="json"
    )
    before = balances()

    # when each side lists bonuses
    with django_assert_num_queries(2):
        mine = requester_client.get("/api/v1/bonuses")
    with django_assert_num_queries(2):
        received = worker_client.get("/api/v1/work/bonuses")
    as_worker = worker_client.get("/api/v1/bonuses")

    # then each sees only its own, and every bonus moved its amount and 10% fee, once
    assert mine.json()["results"] == list(reversed(sent))
    assert [b["id"] for b in received.json()["results"]] == [
        theirs.json()["id"],
        sent[2]["id"],
        sent[0]["id"],
    ]
    assert received.json()["results"][0] == {
        "id": theirs.json()["id"],
        "amount_cents": 50,
        "currency": "USD",
        "reason": "from them",
        "created_at": theirs.json()["created_at"],
    }
    assert as_worker.status_code == 403
    assert balance(OwnerKind.WORKER, worker.pk, AccountKind.PENDING) == 100 + 300 + 50
    assert balances() == before
    assert before == {
        "platform:stripe_clearing": -20_000,
        f"requester:{requester.pk}:available": 10_000 - (100 + 10) - (200 + 20) - (300 + 30),
        f"requester:{other_requester.pk}:available": 10_000 - (50 + 5),
        f"worker:{worker.pk}:pending": 100 + 300 + 50,
        f"worker:{other_worker.pk}:pending": 200,
        "platform:fee_revenue": 10 + 20 + 30 + 5,
    }
    assert ledger_reconcile() == []
