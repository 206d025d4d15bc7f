"""Assignments in the admin: no verdict is typed in; accept, reject and reverse are actions calling
the review service, so they move counters, pay and log exactly like the requester's API."""

from __future__ import annotations

import pytest

from crowd.enums import AssignmentStatus
from crowd.models import Assignment
from marketplace.enums import TaskStatus
from marketplace.services.budget import assignment_payments_reconcile
from payments.models import LedgerTransaction
from payments.services.escrow import requester_freeze
from payments.services.ledger import ledger_reconcile
from tests.admin.helpers import (
    FEE,
    PRICE,
    act,
    answered,
    change_form_data,
    events,
    messages_of,
    posting,
    review,
)
from tests.factories import OPEN_BATCH_CUSHION_CENTS, db_snapshot
from tests.payments.factories import balances

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/crowd/assignment/"


def _funded(requester, worker, *, tasks: int, paid: int) -> dict[str, int]:
    """Balances of ``answered``'s batch with ``paid`` of its ``tasks`` answers paid for."""
    reserve = (PRICE + FEE) * tasks
    expected = {
        "platform:stripe_clearing": -(reserve + OPEN_BATCH_CUSHION_CENTS),
        f"requester:{requester.pk}:available": OPEN_BATCH_CUSHION_CENTS,
        f"requester:{requester.pk}:reserved": reserve - (PRICE + FEE) * paid,
        f"worker:{worker.pk}:pending": PRICE * paid,
        "platform:fee_revenue": FEE * paid,
    }
    return {name: cents for name, cents in expected.items() if cents}


def _legs(requester, worker) -> list[tuple[str, str, int]]:
    reserved = f"requester:{requester.pk}:reserved (USD)"
    return [
        (reserved, f"worker:{worker.pk}:pending (USD)", PRICE),
        (reserved, "platform:fee_revenue (USD)", FEE),
    ]


def test_the_change_form_cannot_turn_a_rejected_answer_accepted(requester, staff):
    # given an answer the requester rejected
    _, worker, (a1, _) = answered(requester)
    review(requester, [a1], "reject", "Wrong label.")
    url = f"{CHANGELIST}{a1}/change/"
    before = (db_snapshot(), balances(), LedgerTransaction.objects.count(), events(a1))

    # when an admin opens it and posts status=accepted, then tries to delete it
    page = staff.get(url)
    edit = staff.post(url, change_form_data(page, status="accepted"))
    delete = staff.post(f"{CHANGELIST}{a1}/delete/", {"post": "yes"})

    # then the page shows no input and no delete link, both POSTs are refused, nothing changed
    html = page.content.decode()
    assert page.status_code == 200
    assert 'name="status"' not in html and "deletelink" not in html and 'name="_save"' not in html
    assert (edit.status_code, delete.status_code) == (403, 403)
    assert Assignment.objects.get(pk=a1).status == AssignmentStatus.REJECTED
    assert (db_snapshot(), balances(), LedgerTransaction.objects.count(), events(a1)) == before
    assert events(a1) == [
        ("active", "submitted", "worker", worker.user_id, ""),
        ("submitted", "rejected", "requester", requester.user_id, "Wrong label."),
    ]


def test_accept_pays_and_logs_like_the_requesters_accept(requester, staff, admin_user):
    # given two answers; the requester accepts the first through the API
    batch, worker, (a1, a2) = answered(requester)
    review(requester, [a1], "accept")
    assert balances() == _funded(requester, worker, tasks=2, paid=1)

    # when an admin accepts the second through the action
    response = act(staff, CHANGELIST, "accept", [a2])

    # then it is accepted and paid with the same posting and the same event, by the admin
    assert messages_of(response) == ["Accepted 1 assignment(s)."]
    assert Assignment.objects.get(pk=a2).status == AssignmentStatus.ACCEPTED
    assert events(a1)[-1] == ("submitted", "accepted", "requester", requester.user_id, "")
    assert events(a2)[-1] == ("submitted", "accepted", "admin", admin_user.pk, "")
    assert posting(f"accept:assignment:{a1}") == ("accept", _legs(requester, worker))
    assert posting(f"accept:assignment:{a2}") == ("accept", _legs(requester, worker))
    assert balances() == _funded(requester, worker, tasks=2, paid=2)
    batch.refresh_from_db()
    assert (batch.reserved_cents, batch.spent_cents) == (2 * (PRICE + FEE), 2 * (PRICE + FEE))
    assert ledger_reconcile() == [] and assignment_payments_reconcile() == []


def test_reject_asks_for_a_reason_then_reopens_the_slot_and_moves_no_money(requester, staff, admin_user):
    # given an answered task (overlap 1: complete)
    _, worker, (a1, _) = answered(requester)
    task = Assignment.objects.get(pk=a1).task
    assert (task.status, task.slots_taken, task.answers_count) == (TaskStatus.COMPLETE, 1, 1)
    before = balances()

    # when the admin picks "reject": a page asks for the reason; a blank one is refused
    page = act(staff, CHANGELIST, "reject", [a1])
    blank = act(staff, CHANGELIST, "reject", [a1], reason="  ")
    unchanged = Assignment.objects.get(pk=a1).status
    # and the admin confirms with a reason
    done = act(staff, CHANGELIST, "reject", [a1], reason="Wrong label.")

    # then
    assert page.status_code == 200 and b'name="reason"' in page.content
    assert blank.status_code == 200 and b"This field is required." in blank.content
    assert unchanged == AssignmentStatus.SUBMITTED
    assert messages_of(done) == ["Rejected 1 assignment(s)."]
    rejected = Assignment.objects.get(pk=a1)
    assert (rejected.status, rejected.review_reason) == (AssignmentStatus.REJECTED, "Wrong label.")
    assert events(a1)[-1] == ("submitted", "rejected", "admin", admin_user.pk, "Wrong label.")
    task.refresh_from_db()
    assert (task.status, task.slots_taken, task.answers_count) == (TaskStatus.OPEN, 0, 0)
    assert balances() == before == _funded(requester, worker, tasks=2, paid=0)
    assert not LedgerTransaction.objects.filter(kind="accept").exists()


def test_reverse_accepts_a_rejected_answer_and_pays_it_once(requester, staff, admin_user):
    # given an answer the requester rejected
    _, worker, (a1, _) = answered(requester)
    review(requester, [a1], "reject", "Wrong label.")
    before = balances()

    # when the admin reverses it, with a reason, and then tries again
    done = act(staff, CHANGELIST, "reverse", [a1], reason="Checked: it is a cat.")
    again = act(staff, CHANGELIST, "reverse", [a1], reason="Once more.")

    # then it is accepted and paid exactly once; the second attempt is an error message
    assert messages_of(done) == ["Reversed 1 rejection(s)."]
    assert messages_of(again) == [
        f"Not changed: {a1}: The assignment is accepted; it cannot become accepted."
    ]
    assert events(a1)[-1] == ("rejected", "accepted", "admin", admin_user.pk, "Checked: it is a cat.")
    assert len(events(a1)) == 3
    assert posting(f"accept:assignment:{a1}") == ("accept", _legs(requester, worker))
    assert before == _funded(requester, worker, tasks=2, paid=0)
    assert balances() == _funded(requester, worker, tasks=2, paid=1)
    task = Assignment.objects.get(pk=a1).task
    assert (task.status, task.slots_taken, task.answers_count) == (TaskStatus.COMPLETE, 1, 1)
    assert ledger_reconcile() == [] and assignment_payments_reconcile() == []


def test_each_action_only_moves_answers_in_its_own_state_and_names_the_others(requester, staff):
    # given a submitted, an accepted and a rejected answer
    _, worker, (submitted, accepted, rejected) = answered(requester, tasks=3)
    review(requester, [accepted], "accept")
    review(requester, [rejected], "reject", "No.")
    before = balances()

    # when the admin accepts all three, then rejects the accepted one
    accept = act(staff, CHANGELIST, "accept", [submitted, accepted, rejected])
    reject = act(staff, CHANGELIST, "reject", [accepted], reason="Too late.")

    # then only the submitted one moved (and was paid); the others are named with the reason
    assert messages_of(accept) == [
        "Accepted 1 assignment(s).",
        f"Not changed: {accepted}: The assignment is accepted; it cannot become accepted.; "
        f"{rejected}: The assignment is rejected, not submitted.",
    ]
    assert messages_of(reject) == [
        f"Not changed: {accepted}: The assignment is accepted; it cannot become rejected."
    ]
    assert dict(Assignment.objects.filter(worker=worker).values_list("pk", "status")) == {
        submitted: "accepted",
        accepted: "accepted",
        rejected: "rejected",
    }
    assert before == _funded(requester, worker, tasks=3, paid=1)
    assert balances() == _funded(requester, worker, tasks=3, paid=2)


def test_an_accept_the_service_refuses_is_an_error_message_and_changes_nothing(requester, staff):
    # given an answer of a requester frozen by a chargeback
    _, _, (a1, _) = answered(requester)
    requester_freeze(requester_id=requester.pk, reason="chargeback dp_1")
    before = (db_snapshot(), balances(), events(a1))

    # when the admin accepts it
    response = act(staff, CHANGELIST, "accept", [a1])

    # then the refusal is reported, not a 500, and nothing changed
    assert response.status_code == 200
    assert messages_of(response) == [
        f"Not changed: {a1}: Your account is frozen while a card dispute is open; contact support."
    ]
    assert (db_snapshot(), balances(), events(a1)) == before
