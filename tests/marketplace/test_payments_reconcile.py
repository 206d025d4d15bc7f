"""``assignment_payments_reconcile``: every accepted answer has its payment and no other answer has
one; ``manage.py reconcile_ledger`` and the beat task report it with the ledger's own checks."""

from __future__ import annotations

import logging
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from crowd.enums import AssignmentStatus
from crowd.models import Assignment
from marketplace.enums import ReviewMode
from marketplace.models import Skill, Task
from marketplace.services.budget import assignment_payments_reconcile
from payments.enums import AccountKind
from payments.errors import LedgerImbalance
from payments.models import LedgerEntry, LedgerTransaction
from payments.money import fee_cents
from payments.services.bonuses import bonus_pay
from payments.services.ledger import ledger_reconcile, platform_account, requester_account, worker_account
from payments.tasks import ledger_reconcile as ledger_reconcile_task
from tests.factories import WorkerFactory, client_for, open_batch

pytestmark = pytest.mark.django_db

PRICE = 50
FEE = fee_cents(PRICE, settings.PLATFORM_FEE_BPS)


def _answer_all(batch, worker, count: int) -> list[int]:
    client = client_for(worker.user)
    leases = client.post(f"/api/v1/work/batches/{batch.pk}/claim", {"count": count}, format="json").json()
    ids = sorted(lease["id"] for lease in leases["assignments"])
    for pk in ids:
        assert (
            client.post(f"/api/v1/work/assignments/{pk}/submit", {"answer": "cat"}, format="json").status_code
            == 200
        )
    return ids


def _review(requester, ids, verdict, reason=""):
    response = client_for(requester.user).post(
        "/api/v1/assignments/review", {"ids": ids, "verdict": verdict, "reason": reason}, format="json"
    )
    assert response.status_code == 200, response.json()


def _every_way_to_pay(requester):
    """Answers paid and not paid every way there is: reviewed (accepted, rejected, a rejection
    reversed), gold answers accepted by review mode, a training batch, a batch priced 0, a bonus."""
    worker = WorkerFactory()
    manual = open_batch(project__requester=requester, regular=3, overlap=1, price_cents=PRICE)
    accepted, rejected, reversed_ = _answer_all(manual, worker, 3)
    _review(requester, [accepted], "accept")
    _review(requester, [rejected, reversed_], "reject", "Wrong.")
    _review(requester, [reversed_], "accept")
    gold = open_batch(
        project__requester=requester,
        regular=2,
        gold=2,
        gold_rate=1.0,
        overlap=1,
        price_cents=40,
        review_mode=ReviewMode.AUTO,
    )
    _answer_all(gold, worker, 4)
    skill = Skill.objects.create(requester=requester, name="Animals")
    training = open_batch(
        project__requester=requester,
        is_training=True,
        training_skill=skill,
        price_cents=30,
        overlap=1,
        review_mode=ReviewMode.AUTO,
    )
    Task.objects.bulk_create(
        Task(batch=training, input={"text": "t"}, gold_answer="cat", overlap=1) for _ in "ab"
    )
    _answer_all(training, worker, 2)
    free = open_batch(
        project__requester=requester, regular=1, overlap=1, price_cents=0, review_mode=ReviewMode.AUTO
    )
    _answer_all(free, worker, 1)
    bonus_pay(requester=requester, worker=worker, amount_cents=100, reason="Careful work.")
    return worker, manual, (accepted, rejected, reversed_)


def test_every_way_an_answer_is_paid_reconciles(requester):
    # given answers accepted, rejected and reversed, gold, training, unpriced, and a bonus
    _, _, (accepted, rejected, reversed_) = _every_way_to_pay(requester)
    assert sorted(Assignment.objects.values_list("batch__price_cents", "is_gold", "status")) == sorted(
        [(PRICE, False, "accepted"), (PRICE, False, "rejected"), (PRICE, False, "accepted")]
        + [(40, True, "accepted")] * 2
        + [(40, False, "accepted")] * 2
        + [(30, False, "accepted")] * 2
        + [(0, False, "accepted")]
    )
    out = StringIO()

    # when the checks run
    problems = assignment_payments_reconcile()
    call_command("reconcile_ledger", stdout=out)

    # then none finds anything; each priced accepted answer has its one posting
    assert problems == []
    assert ledger_reconcile() == []
    assert out.getvalue().startswith("ledger balanced:")
    assert ledger_reconcile_task.delay().get() == 0
    assert LedgerTransaction.objects.filter(kind="accept").count() == 2 + 4 + 2
    paid = set(LedgerTransaction.objects.filter(kind="accept").values_list("idempotency_key", flat=True))
    assert {f"accept:assignment:{accepted}", f"accept:assignment:{reversed_}"} <= paid
    assert f"accept:assignment:{rejected}" not in paid


def test_a_missing_or_stray_payment_is_reported_line_by_line(requester, caplog):
    # given the same answers, then: the payment of an accepted answer deleted, a rejected answer
    # set accepted by hand (what the admin's change form used to allow) and a paid one set rejected
    worker, manual, (accepted, rejected, reversed_) = _every_way_to_pay(requester)
    key = f"accept:assignment:{accepted}"
    LedgerEntry.objects.filter(transaction__idempotency_key=key).delete()
    LedgerTransaction.objects.filter(idempotency_key=key).delete()
    Assignment.objects.filter(pk=rejected).update(status=AssignmentStatus.ACCEPTED)
    Assignment.objects.filter(pk=reversed_).update(status=AssignmentStatus.REJECTED)
    # the deleted entries leave three balances above their ledger, by the price and the fee
    drifted = sorted(
        [
            (requester_account(requester.pk, AccountKind.RESERVED), +(PRICE + FEE)),
            (worker_account(worker.pk, AccountKind.PENDING), -PRICE),
            (platform_account(AccountKind.FEE_REVENUE), -FEE),
        ],
        key=lambda pair: pair[0].pk,
    )
    ledger_lines = [
        f"account {a.pk} ({a}): balance {a.balance_cents} != ledger {a.balance_cents + delta}"
        for a, delta in drifted
    ]
    payment_lines = [
        *(
            f"assignment {pk} of batch {manual.pk} is accepted but has no posting accept:assignment:{pk}"
            for pk in (accepted, rejected)
        ),
        f"assignment {reversed_} is rejected but posting accept:assignment:{reversed_} paid it",
    ]
    err = StringIO()

    # when the checks run: the service, the command, the beat task
    problems = assignment_payments_reconcile()
    with pytest.raises(CommandError, match="ledger out of balance: 6 problem"):
        call_command("reconcile_ledger", stderr=err)
    with caplog.at_level(logging.ERROR, logger="payments.tasks"), pytest.raises(LedgerImbalance):
        ledger_reconcile_task.delay()

    # then each reports exactly these lines
    assert problems == payment_lines
    assert ledger_reconcile() == ledger_lines
    assert err.getvalue().splitlines() == ledger_lines + payment_lines
    assert [r.getMessage() for r in caplog.records if r.name == "payments.tasks"] == [
        f"ledger mismatch: {line}" for line in ledger_lines + payment_lines
    ]


def test_a_payment_whose_answer_is_gone_is_reported(requester):
    # given an accepted, paid answer whose row is then deleted
    _, _, (accepted, _, _) = _every_way_to_pay(requester)
    Assignment.objects.filter(pk=accepted).delete()

    # when
    problems = assignment_payments_reconcile()

    # then
    assert problems == [
        f"posting accept:assignment:{accepted} paid assignment {accepted}, which does not exist"
    ]
