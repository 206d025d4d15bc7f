"""Money follows the batch: publish reserves, an accepted answer pays, close gives back the rest."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.db.models import F
from django.utils import timezone

from crowd.models import Assignment
from crowd.quality.review import assignments_auto_accept
from marketplace.enums import BatchStatus
from marketplace.models import Batch, Task
from marketplace.services import budget
from payments.enums import AccountKind, OwnerKind
from payments.money import fee_cents
from payments.services.ledger import ledger_reconcile
from tests.factories import (
    AssignmentFactory,
    BatchFactory,
    fund,
    make_tasks,
    open_batch,
)
from tests.payments.factories import balance, platform_balance

pytestmark = pytest.mark.django_db


def _available(requester) -> int:
    return balance(OwnerKind.REQUESTER, requester.pk, AccountKind.AVAILABLE)


def _reserved(requester) -> int:
    return balance(OwnerKind.REQUESTER, requester.pk, AccountKind.RESERVED)


def _answered(task: Task, **fields) -> Assignment:
    """A submitted answer to ``task``, with the task's counters kept exact."""
    fields.setdefault("submitted_at", timezone.now())
    answer = AssignmentFactory(task=task, status="submitted", answer="cat", **fields)
    if not task.is_gold:
        Task.objects.filter(pk=task.pk).update(
            slots_taken=F("slots_taken") + 1, answers_count=F("answers_count") + 1
        )
    return answer


def _per_answer(batch: Batch) -> int:
    return batch.price_cents + fee_cents(batch.price_cents, settings.PLATFORM_FEE_BPS)


def test_publish_reserves_price_and_fee_for_every_answer_wanted(requester, requester_client):
    # given 4 tasks wanted 3 times at 50 cents (+ the fee), and 1,000 cents more than that
    batch = BatchFactory(project__requester=requester, price_cents=50, overlap=3)
    make_tasks(batch, 4, gold=2)
    cost = 4 * 3 * _per_answer(batch)
    fund(requester, cost + 1000)

    # when
    response = requester_client.post(f"/api/v1/batches/{batch.pk}/publish")

    # then gold tasks cost nothing up front; the regular answers are reserved
    assert response.status_code == 200
    assert (_available(requester), _reserved(requester)) == (1000, cost)
    batch.refresh_from_db()
    assert (batch.reserved_cents, batch.spent_cents) == (cost, 0)
    assert ledger_reconcile() == []


def test_publish_without_enough_money_is_409_with_the_shortfall_and_changes_nothing(
    requester, requester_client
):
    # given
    batch = BatchFactory(project__requester=requester, price_cents=50, overlap=3)
    make_tasks(batch, 4)
    cost = 4 * 3 * _per_answer(batch)
    fund(requester, cost - 1)

    # when
    response = requester_client.post(f"/api/v1/batches/{batch.pk}/publish")

    # then
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "insufficient_funds"
    assert body["detail"]["shortfall_cents"] == 1
    batch.refresh_from_db()
    assert (batch.status, batch.published_at, batch.reserved_cents) == (BatchStatus.DRAFT, None, 0)
    assert (_available(requester), _reserved(requester)) == (cost - 1, 0)


def test_adding_tasks_to_an_open_batch_reserves_them_or_refuses_the_whole_upload(requester, requester_client):
    # given an open batch whose requester has money for exactly 2 more tasks
    batch = open_batch(regular=1, project__requester=requester, price_cents=10, overlap=2)
    spare = _available(requester)
    per_task = 2 * _per_answer(batch)
    rows = [{"input": {"text": f"new {i}"}} for i in range(spare // per_task + 1)]

    # when one task too many is uploaded
    refused = requester_client.post(f"/api/v1/batches/{batch.pk}/tasks", rows, format="json")

    # then nothing is created and nothing moves
    assert refused.status_code == 409
    assert refused.json()["code"] == "insufficient_funds"
    assert Task.objects.filter(batch=batch).count() == 1
    assert _available(requester) == spare

    # when the upload fits
    accepted = requester_client.post(f"/api/v1/batches/{batch.pk}/tasks", rows[:2], format="json")

    # then the new answers are reserved
    assert accepted.status_code == 201
    assert _available(requester) == spare - 2 * per_task
    batch.refresh_from_db()
    assert batch.reserved_cents == 3 * per_task


def test_an_accepted_answer_pays_the_worker_and_the_fee_a_rejected_one_pays_nothing(
    requester, requester_client
):
    # given two submitted answers in a funded batch
    batch = open_batch(regular=2, project__requester=requester, price_cents=40, overlap=1)
    good, bad = (_answered(task) for task in Task.objects.filter(batch=batch).order_by("id"))
    reserved = _reserved(requester)
    fee = fee_cents(40, settings.PLATFORM_FEE_BPS)
    fees_before = platform_balance(AccountKind.FEE_REVENUE)

    # when
    accept = requester_client.post(
        "/api/v1/assignments/review", {"ids": [good.pk], "verdict": "accept"}, format="json"
    )
    reject = requester_client.post(
        "/api/v1/assignments/review",
        {"ids": [bad.pk], "verdict": "reject", "reason": "Not what was asked."},
        format="json",
    )

    # then
    assert (accept.status_code, reject.status_code) == (200, 200)
    assert balance(OwnerKind.WORKER, good.worker_id, AccountKind.PENDING) == 40
    assert balance(OwnerKind.WORKER, bad.worker_id, AccountKind.PENDING) == 0
    assert platform_balance(AccountKind.FEE_REVENUE) - fees_before == fee
    assert _reserved(requester) == reserved - 40 - fee
    batch.refresh_from_db()
    assert batch.spent_cents == 40 + fee
    assert ledger_reconcile() == []


def test_closing_returns_the_unspent_reserve(requester, requester_client):
    # given one answer of six paid for
    batch = open_batch(regular=2, project__requester=requester, price_cents=40, overlap=3)
    task = Task.objects.filter(batch=batch).first()
    answer = _answered(task)
    requester_client.post(
        "/api/v1/assignments/review", {"ids": [answer.pk], "verdict": "accept"}, format="json"
    )
    available = _available(requester)

    # when
    response = requester_client.post(f"/api/v1/batches/{batch.pk}/close")

    # then five answers' worth comes back, and the reserve is empty
    assert response.status_code == 200
    assert _available(requester) == available + 5 * _per_answer(batch)
    assert _reserved(requester) == 0
    batch.refresh_from_db()
    assert batch.reserved_cents == batch.spent_cents == _per_answer(batch)
    assert ledger_reconcile() == []


def test_accept_without_money_for_a_gold_answer_is_409_and_pauses_the_batch(requester, requester_client):
    # given a batch reserved exactly for its regular answers, no spare money, and a gold answer
    batch = BatchFactory(project__requester=requester, price_cents=40, overlap=1)
    make_tasks(batch, 1, gold=1)
    fund(requester, budget.batch_required_cents(batch))
    requester_client.post(f"/api/v1/batches/{batch.pk}/publish")
    gold = Task.objects.get(batch=batch, is_gold=True)
    answer = _answered(gold)
    regular = _answered(Task.objects.get(batch=batch, is_gold=False))

    # when both are accepted at once: the reserve covers one answer, not two
    response = requester_client.post(
        "/api/v1/assignments/review", {"ids": [answer.pk, regular.pk], "verdict": "accept"}, format="json"
    )

    # then nothing is accepted or paid, and the batch stops taking work until money arrives
    assert response.status_code == 409
    assert response.json()["code"] == "insufficient_funds"
    assert response.json()["detail"]["shortfall_cents"] == _per_answer(batch)
    assert set(Assignment.objects.filter(batch=batch).values_list("status", flat=True)) == {"submitted"}
    batch.refresh_from_db()
    assert (batch.status, batch.pause_reason, batch.spent_cents) == ("paused", "not_enough_balance", 0)

    # and once funded, publishing again reopens it and the same review goes through
    fund(requester, _per_answer(batch))
    assert requester_client.post(f"/api/v1/batches/{batch.pk}/publish").status_code == 200
    again = requester_client.post(
        "/api/v1/assignments/review", {"ids": [answer.pk, regular.pk], "verdict": "accept"}, format="json"
    )
    assert again.status_code == 200
    batch.refresh_from_db()
    assert (batch.status, batch.pause_reason, batch.spent_cents) == ("open", "", 2 * _per_answer(batch))
    assert ledger_reconcile() == []


def test_auto_accept_that_cannot_pay_leaves_answers_submitted_and_pauses_only_that_batch(requester):
    # given two batches with overdue answers: one can pay, the other has no money for its gold answer
    paying = open_batch(regular=1, price_cents=10, overlap=1)
    broke = BatchFactory(project__requester=requester, price_cents=10, overlap=1)
    make_tasks(broke, 1, gold=1)
    fund(requester, budget.batch_required_cents(broke))
    budget.batch_reserve_required(batch=broke)
    Batch.objects.filter(pk=broke.pk).update(status="open", published_at=timezone.now())
    old = timezone.now() - timedelta(hours=100)
    paid = _answered(paying.tasks.get(), submitted_at=old)
    unpaid = [_answered(task, submitted_at=old) for task in broke.tasks.order_by("-is_gold")]

    # when the sweep runs (twice: it must be safe to repeat)
    first = assignments_auto_accept()
    second = assignments_auto_accept()

    # then
    assert (first, second) == (1, 0)
    paid.refresh_from_db()
    assert paid.status == "accepted"
    assert {a.status for a in Assignment.objects.filter(pk__in=[a.pk for a in unpaid])} == {"submitted"}
    broke.refresh_from_db()
    paying.refresh_from_db()
    assert (broke.status, broke.pause_reason) == ("paused", "not_enough_balance")
    assert paying.status == "open"
    assert ledger_reconcile() == []
