"""Appeals: a worker contests a rejection; the requester (3 days) or an admin overturns or upholds.

Overturning accepts the answer through the review code, so the worker is paid exactly like any
accepted answer. Every money test asserts the balances exactly.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from crowd.enums import AppealStatus, AssignmentStatus
from crowd.models import Appeal, Assignment, AssignmentEvent
from crowd.quality.appeals import appeal_decide, appeals_escalate
from crowd.tasks import appeals_escalate as appeals_escalate_task
from marketplace.enums import BatchStatus
from marketplace.errors import Forbidden
from marketplace.models import Batch, User
from marketplace.selectors import worker_pseudonym
from marketplace.services import budget
from payments.enums import AccountKind, OwnerKind
from payments.models import LedgerEntry
from payments.money import fee_cents
from payments.services.escrow import requester_freeze
from payments.services.ledger import ledger_reconcile
from tests.factories import (
    BatchFactory,
    RequesterFactory,
    WorkerFactory,
    client_for,
    db_snapshot,
    fund,
    iso,
    make_tasks,
    open_batch,
)
from tests.payments.factories import balance, platform_balance

pytestmark = pytest.mark.django_db

PRICE = 50
FEE = fee_cents(PRICE, settings.PLATFORM_FEE_BPS)


# --- builders ---------------------------------------------------------------------------------


def _answer(client, batch) -> int:
    [lease] = client.post(f"/api/v1/work/batches/{batch.pk}/claim", {"count": 1}, format="json").json()[
        "assignments"
    ]
    submitted = client.post(
        f"/api/v1/work/assignments/{lease['id']}/submit", {"answer": "cat"}, format="json"
    )
    assert submitted.status_code == 200
    return lease["id"]


def _review(client, ids, verdict, reason="Wrong label."):
    response = client.post(
        "/api/v1/assignments/review", {"ids": ids, "verdict": verdict, "reason": reason}, format="json"
    )
    assert response.status_code == 200, response.json()


def _rejected(requester, requester_client, batch=None):
    """A worker's answer in one of ``requester``'s batches, rejected by the requester."""
    batch = batch or open_batch(project__requester=requester, regular=1, overlap=1, price_cents=PRICE)
    worker = WorkerFactory()
    worker_client = client_for(worker.user)
    assignment_id = _answer(worker_client, batch)
    _review(requester_client, [assignment_id], "reject")
    return batch, worker, worker_client, assignment_id


def _appeal(worker_client, assignment_id, message="The text says cat."):
    return worker_client.post(
        f"/api/v1/work/assignments/{assignment_id}/appeal", {"message": message}, format="json"
    )


def _appealed(requester, requester_client, **kwargs):
    batch, worker, worker_client, assignment_id = _rejected(requester, requester_client, **kwargs)
    response = _appeal(worker_client, assignment_id)
    assert response.status_code == 201, response.json()
    return batch, worker, worker_client, assignment_id, Appeal.objects.get(pk=response.json()["id"])


def _age(appeal: Appeal, delta: timedelta) -> None:
    """Move an appeal ``delta`` into the past, as if it had been opened then."""
    Appeal.objects.filter(pk=appeal.pk).update(
        created_at=appeal.created_at - delta, requester_deadline=appeal.requester_deadline - delta
    )


def _pending(worker) -> int:
    return balance(OwnerKind.WORKER, worker.pk, AccountKind.PENDING)


def _requester_money(requester) -> tuple[int, int]:
    return (
        balance(OwnerKind.REQUESTER, requester.pk, AccountKind.AVAILABLE),
        balance(OwnerKind.REQUESTER, requester.pk, AccountKind.RESERVED),
    )


def _events(assignment_id):
    return list(
        AssignmentEvent.objects.filter(assignment_id=assignment_id).values_list(
            "from_status", "to_status", "actor", "actor_user_id", "reason"
        )
    )


def _frozen_state() -> dict:
    """Everything an appeal decision may touch, to compare before and after a refused one."""
    return {
        "db": db_snapshot(),
        "appeals": list(Appeal.objects.order_by("pk").values()),
        "events": AssignmentEvent.objects.count(),
        "ledger": LedgerEntry.objects.count(),
    }


@pytest.fixture
def staff(db):
    return User.objects.create_superuser(email="admin@example.com", password="pw-Secret-123")


# --- opening ----------------------------------------------------------------------------------


def test_worker_appeals_a_rejection_within_the_window(requester, requester_client):
    # given
    _, _, worker_client, assignment_id = _rejected(requester, requester_client)

    # when
    response = _appeal(worker_client, assignment_id, "  The text says cat.  ")

    # then
    assert response.status_code == 201
    appeal = Appeal.objects.get()
    assert (appeal.status, appeal.message, appeal.assignment_id) == (
        "open",
        "The text says cat.",
        assignment_id,
    )
    assert appeal.requester_deadline == appeal.created_at + timedelta(days=3)
    assert response.json() == {
        "id": appeal.pk,
        "assignment": assignment_id,
        "batch": appeal.assignment.batch_id,
        "status": "open",
        "message": "The text says cat.",
        "created_at": iso(appeal.created_at),
        "requester_deadline": iso(appeal.requester_deadline),
        "decided_at": None,
        "decided_by": "",
        "note": "",
    }
    assert worker_client.get("/api/v1/work/appeals").json()["results"] == [response.json()]


def test_appeal_after_seven_days_is_409_and_writes_nothing(requester, requester_client):
    # given a rejection 7 days and a minute old
    _, _, worker_client, assignment_id = _rejected(requester, requester_client)
    Assignment.objects.filter(pk=assignment_id).update(
        reviewed_at=timezone.now() - timedelta(days=7, minutes=1)
    )

    # when
    response = _appeal(worker_client, assignment_id)

    # then
    assert response.status_code == 409
    assert response.json()["code"] == "appeal_window_closed"
    assert not Appeal.objects.exists()


def test_a_second_appeal_is_409(requester, requester_client):
    # given
    _, _, worker_client, assignment_id, appeal = _appealed(requester, requester_client)

    # when
    response = _appeal(worker_client, assignment_id, "Again.")

    # then
    assert response.status_code == 409
    assert response.json() == {
        "code": "already_appealed",
        "message": "This answer has already been appealed.",
        "detail": {},
    }
    assert list(Appeal.objects.values_list("pk", "message")) == [(appeal.pk, "The text says cat.")]


def test_appealing_another_workers_assignment_is_404(requester, requester_client):
    # given
    _, _, _, assignment_id = _rejected(requester, requester_client)
    intruder = client_for(WorkerFactory().user)

    # when
    response = _appeal(intruder, assignment_id)

    # then
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "message": "Assignment not found.", "detail": {}}
    assert not Appeal.objects.exists()


def test_only_rejected_answers_can_be_appealed_and_a_message_is_required(requester, requester_client):
    # given an accepted answer and a rejected one
    batch = open_batch(project__requester=requester, regular=2, overlap=1, price_cents=PRICE)
    worker = WorkerFactory()
    worker_client = client_for(worker.user)
    accepted, rejected = _answer(worker_client, batch), _answer(worker_client, batch)
    _review(requester_client, [accepted], "accept")
    _review(requester_client, [rejected], "reject")

    # when
    not_rejected = _appeal(worker_client, accepted)
    blank = _appeal(worker_client, rejected, "   ")
    too_long = _appeal(worker_client, rejected, "x" * 2001)

    # then
    assert (not_rejected.status_code, not_rejected.json()["code"]) == (409, "not_rejected")
    assert (blank.status_code, blank.json()["code"]) == (400, "invalid")
    assert (too_long.status_code, too_long.json()["code"]) == (400, "invalid")
    assert not Appeal.objects.exists()


# --- the requester decides --------------------------------------------------------------------


def test_requester_overturns_within_three_days_and_the_worker_is_paid(requester, requester_client):
    # given
    batch, worker, worker_client, assignment_id, appeal = _appealed(requester, requester_client)
    assert _pending(worker) == 0
    available, reserved = _requester_money(requester)

    # when
    response = requester_client.post(
        f"/api/v1/appeals/{appeal.pk}/overturn", {"note": "You are right."}, format="json"
    )

    # then the answer is accepted and paid from the batch's reserve
    assert response.status_code == 200, response.json()
    appeal.refresh_from_db()
    assert (appeal.status, appeal.decided_by_kind, appeal.decided_by, appeal.note) == (
        "overturned",
        "requester",
        requester.user,
        "You are right.",
    )
    assignment = Assignment.objects.get(pk=assignment_id)
    assert (assignment.status, assignment.review_reason) == (AssignmentStatus.ACCEPTED, "You are right.")
    assert _events(assignment_id)[-1] == (
        "rejected",
        "accepted",
        "requester",
        requester.user.pk,
        "You are right.",
    )
    assert _pending(worker) == PRICE
    assert _requester_money(requester) == (available, reserved - PRICE - FEE)
    batch.refresh_from_db()
    assert batch.spent_cents == PRICE + FEE
    assert ledger_reconcile() == []
    assert response.json() == {
        "id": appeal.pk,
        "assignment": assignment_id,
        "batch": batch.pk,
        "status": "overturned",
        "message": "The text says cat.",
        "created_at": iso(appeal.created_at),
        "requester_deadline": iso(appeal.requester_deadline),
        "decided_at": iso(appeal.decided_at),
        "decided_by": "requester",
        "note": "You are right.",
        "worker": worker_pseudonym(requester_id=requester.pk, worker_id=worker.pk),
        "rejection_reason": "",
        "answer": "cat",
    }
    # and the worker sees the decision and its note
    [mine] = worker_client.get("/api/v1/work/appeals").json()["results"]
    assert (mine["status"], mine["decided_by"], mine["note"]) == ("overturned", "requester", "You are right.")


def test_requester_upholds_with_a_note_and_no_money_moves(requester, requester_client):
    # given
    _, worker, worker_client, assignment_id, appeal = _appealed(requester, requester_client)
    money = _requester_money(requester)

    # when a note is missing, then given
    no_note = requester_client.post(f"/api/v1/appeals/{appeal.pk}/uphold", {}, format="json")
    response = requester_client.post(
        f"/api/v1/appeals/{appeal.pk}/uphold", {"note": "The text says dog."}, format="json"
    )

    # then
    assert (no_note.status_code, no_note.json()["code"]) == (400, "invalid")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["note"]) == ("upheld", "The text says dog.")
    assert Assignment.objects.get(pk=assignment_id).status == AssignmentStatus.REJECTED
    assert [e[:2] for e in _events(assignment_id)] == [("active", "submitted"), ("submitted", "rejected")]
    assert (_pending(worker), _requester_money(requester)) == (0, money)
    [mine] = worker_client.get("/api/v1/work/appeals").json()["results"]
    assert (mine["status"], mine["note"]) == ("upheld", "The text says dog.")
    # and a decided appeal stays decided
    again = requester_client.post(f"/api/v1/appeals/{appeal.pk}/overturn", {}, format="json")
    assert (again.status_code, again.json()["code"]) == (409, "appeal_decided")


def test_requester_after_the_deadline_is_409_and_the_sweep_escalates_once(requester, requester_client):
    # given an appeal opened 3 days and a minute ago
    _, worker, _, _, appeal = _appealed(requester, requester_client)
    _age(appeal, timedelta(days=3, minutes=1))
    before = _frozen_state()

    # when
    response = requester_client.post(f"/api/v1/appeals/{appeal.pk}/overturn", {}, format="json")

    # then
    assert response.status_code == 409
    assert response.json()["code"] == "appeal_escalated"
    assert _frozen_state() == before
    assert _pending(worker) == 0

    # when the beat sweep runs twice
    first, second = appeals_escalate_task.delay().get(), appeals_escalate_task.delay().get()

    # then it escalates the appeal once
    assert (first, second) == (1, 0)
    appeal.refresh_from_db()
    assert appeal.status == AppealStatus.ESCALATED
    assert appeal.escalated_at is not None and appeal.decided_at is None
    listed = requester_client.get("/api/v1/appeals?status=escalated").json()["results"]
    assert [a["id"] for a in listed] == [appeal.pk]
    later = requester_client.post(f"/api/v1/appeals/{appeal.pk}/uphold", {"note": "No."}, format="json")
    assert (later.status_code, later.json()["code"]) == (409, "appeal_escalated")


def test_escalation_leaves_appeals_within_their_deadline_and_decided_ones(requester, requester_client):
    # given one fresh appeal and one overdue but already decided
    batch = open_batch(project__requester=requester, regular=2, overlap=1, price_cents=PRICE)
    *_, fresh = _appealed(requester, requester_client, batch=batch)
    *_, decided = _appealed(requester, requester_client, batch=batch)
    appeal_decide(decided.pk, by_user=requester.user, as_admin=False, overturn=False, note="No.")
    _age(decided, timedelta(days=4))

    # when
    escalated = appeals_escalate(now=timezone.now())

    # then
    assert escalated == 0
    assert dict(Appeal.objects.values_list("pk", "status")) == {fresh.pk: "open", decided.pk: "upheld"}


def test_an_answer_accepted_meanwhile_is_not_paid_twice_and_cannot_be_upheld(
    requester, requester_client, staff
):
    # given an open appeal whose answer the requester then accepts through review
    _, worker, _, assignment_id, appeal = _appealed(requester, requester_client)
    _review(requester_client, [assignment_id], "accept", reason="")
    assert _pending(worker) == PRICE
    money = _requester_money(requester)

    # when
    upheld = requester_client.post(f"/api/v1/appeals/{appeal.pk}/uphold", {"note": "No."}, format="json")
    overturned = appeal_decide(appeal.pk, by_user=staff, as_admin=True, overturn=True, note="Already paid.")

    # then
    assert (upheld.status_code, upheld.json()["code"]) == (409, "invalid_transition")
    assert (overturned.status, overturned.decided_by_kind) == ("overturned", "admin")
    assert [e[:2] for e in _events(assignment_id)][-1] == ("rejected", "accepted")
    assert (_pending(worker), _requester_money(requester)) == (PRICE, money)


def test_overturn_without_money_is_409_and_nothing_changes(requester, requester_client):
    # given a batch funded exactly: one answer rejected, the reopened slot answered and accepted, so
    # the reserve is spent and nothing is available
    batch = BatchFactory(project__requester=requester, price_cents=PRICE, overlap=1)
    make_tasks(batch, 1)
    fund(requester, budget.batch_required_cents(batch))
    budget.batch_reserve_required(batch=batch)
    Batch.objects.filter(pk=batch.pk).update(status=BatchStatus.OPEN, published_at=timezone.now())
    _, worker, _, _, appeal = _appealed(requester, requester_client, batch=batch)
    second = _answer(client_for(WorkerFactory().user), batch)
    _review(requester_client, [second], "accept")
    assert _requester_money(requester) == (0, 0)
    before = _frozen_state()

    # when
    response = requester_client.post(f"/api/v1/appeals/{appeal.pk}/overturn", {"note": "Yes."}, format="json")

    # then
    assert response.status_code == 409
    body = response.json()
    assert (body["code"], body["detail"]["shortfall_cents"], body["detail"]["batch"]) == (
        "insufficient_funds",
        PRICE + FEE,
        batch.pk,
    )
    assert _frozen_state() == before
    assert (_pending(worker), _requester_money(requester)) == (0, (0, 0))
    assert Batch.objects.get(pk=batch.pk).status == BatchStatus.OPEN  # an appeal does not pause work

    # when the requester adds funds, the same overturn goes through
    fund(requester, PRICE + FEE)
    paid = requester_client.post(f"/api/v1/appeals/{appeal.pk}/overturn", {"note": "Yes."}, format="json")
    assert paid.status_code == 200
    assert (_pending(worker), _requester_money(requester)) == (PRICE, (0, 0))
    assert ledger_reconcile() == []


def test_a_frozen_requester_cannot_overturn(requester, requester_client):
    # given
    _, worker, _, _, appeal = _appealed(requester, requester_client)
    requester_freeze(requester_id=requester.pk, reason="chargeback dp_1")
    before = _frozen_state()

    # when
    response = requester_client.post(f"/api/v1/appeals/{appeal.pk}/overturn", {}, format="json")

    # then
    assert (response.status_code, response.json()["code"]) == (409, "requester_frozen")
    assert _frozen_state() == before
    assert _pending(worker) == 0


def test_other_requesters_and_workers_never_see_an_appeal(requester, requester_client):
    # given an appeal in requester's batch, and another requester with a batch of their own
    _, _, _, _, appeal = _appealed(requester, requester_client)
    other = RequesterFactory()
    other_client = client_for(other.user)
    open_batch(project__requester=other, regular=1)
    before = _frozen_state()

    # when
    overturn = other_client.post(f"/api/v1/appeals/{appeal.pk}/overturn", {}, format="json")
    uphold = other_client.post(f"/api/v1/appeals/{appeal.pk}/uphold", {"note": "x"}, format="json")
    missing = requester_client.post(f"/api/v1/appeals/{appeal.pk + 1000}/overturn", {}, format="json")

    # then
    not_found = {"code": "not_found", "message": "Appeal not found.", "detail": {}}
    assert (overturn.status_code, overturn.json()) == (404, not_found)
    assert (uphold.status_code, uphold.json()) == (404, not_found)
    assert (missing.status_code, missing.json()) == (404, not_found)
    assert _frozen_state() == before
    assert other_client.get("/api/v1/appeals").json()["results"] == []
    assert client_for(WorkerFactory().user).get("/api/v1/work/appeals").json()["results"] == []


def test_requester_lists_appeals_by_status_under_pseudonyms_in_constant_queries(
    requester, requester_client, django_assert_num_queries
):
    # given three appeals, one upheld
    batch = open_batch(project__requester=requester, regular=3, overlap=1, price_cents=PRICE)
    appealed = [_appealed(requester, requester_client, batch=batch) for _ in range(3)]
    appeal_decide(appealed[0][4].pk, by_user=requester.user, as_admin=False, overturn=False, note="No.")

    # when
    with django_assert_num_queries(2):  # the caller, then appeals joined to assignments: none per row
        everything = requester_client.get("/api/v1/appeals").json()["results"]
    open_only = requester_client.get("/api/v1/appeals?status=open").json()["results"]
    bad = requester_client.get("/api/v1/appeals?status=nope")

    # then
    assert [a["id"] for a in everything] == [x[4].pk for x in reversed(appealed)]
    assert [a["id"] for a in open_only] == [appealed[2][4].pk, appealed[1][4].pk]
    assert {a["worker"] for a in everything} == {
        worker_pseudonym(requester_id=requester.pk, worker_id=x[1].pk) for x in appealed
    }
    assert open_only[0]["rejection_reason"] == "Wrong label."
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid")


# --- admins -----------------------------------------------------------------------------------


def test_admin_overturns_an_escalated_appeal_and_the_worker_is_paid(requester, requester_client, staff):
    # given an escalated appeal
    _, worker, _, assignment_id, appeal = _appealed(requester, requester_client)
    _age(appeal, timedelta(days=4))
    assert appeals_escalate() == 1
    available, reserved = _requester_money(requester)

    # when
    decided = appeal_decide(appeal.pk, by_user=staff, as_admin=True, overturn=True, note="Checked: cat.")

    # then
    assert (decided.status, decided.decided_by_kind, decided.decided_by, decided.note) == (
        "overturned",
        "admin",
        staff,
        "Checked: cat.",
    )
    assert Assignment.objects.get(pk=assignment_id).status == AssignmentStatus.ACCEPTED
    assert _events(assignment_id)[-1] == ("rejected", "accepted", "admin", staff.pk, "Checked: cat.")
    assert _pending(worker) == PRICE
    assert _requester_money(requester) == (available, reserved - PRICE - FEE)
    assert platform_balance(AccountKind.FEE_REVENUE) == FEE
    assert ledger_reconcile() == []


def test_admin_actions_decide_through_a_note_form(requester, requester_client, staff, client):
    # given two escalated appeals
    batch = open_batch(project__requester=requester, regular=2, overlap=1, price_cents=PRICE)
    _, worker_a, _, a_id, appeal_a = _appealed(requester, requester_client, batch=batch)
    _, worker_b, _, b_id, appeal_b = _appealed(requester, requester_client, batch=batch)
    for appeal in (appeal_a, appeal_b):
        _age(appeal, timedelta(days=4))
    appeals_escalate()
    client.force_login(staff)
    url = "/admin/crowd/appeal/"

    # when the admin picks "overturn" for A: a form asks for the note
    form = client.post(url, {"action": "overturn", "_selected_action": [appeal_a.pk]})
    assert form.status_code == 200 and b"Decided by admin" in form.content
    assert Appeal.objects.get(pk=appeal_a.pk).status == AppealStatus.ESCALATED  # nothing decided yet
    # and the admin confirms, then upholds B with the default note
    done = client.post(
        url, {"action": "overturn", "_selected_action": [appeal_a.pk], "apply": "yes", "note": "Fine."}
    )
    upheld = client.post(
        url,
        {"action": "uphold", "_selected_action": [appeal_b.pk], "apply": "yes", "note": "Decided by admin"},
    )

    # then
    assert (done.status_code, upheld.status_code) == (302, 302)
    assert list(
        Appeal.objects.order_by("pk").values_list("status", "decided_by_kind", "decided_by", "note")
    ) == [
        ("overturned", "admin", staff.pk, "Fine."),
        ("upheld", "admin", staff.pk, "Decided by admin"),
    ]
    assert (_pending(worker_a), _pending(worker_b)) == (PRICE, 0)
    assert dict(Assignment.objects.filter(pk__in=[a_id, b_id]).values_list("pk", "status")) == {
        a_id: "accepted",
        b_id: "rejected",
    }
    assert client.get(url + "?status__exact=overturned").status_code == 200


def test_a_non_staff_user_cannot_decide_as_admin(requester, requester_client):
    _, _, _, _, appeal = _appealed(requester, requester_client)

    with pytest.raises(Forbidden) as refused:
        appeal_decide(appeal.pk, by_user=requester.user, as_admin=True, overturn=True, note="")

    assert refused.value.code == "forbidden"
    assert Appeal.objects.get(pk=appeal.pk).status == AppealStatus.OPEN


# --- chargebacks ------------------------------------------------------------------------------


def test_publish_while_frozen_is_409_and_changes_nothing(requester, requester_client):
    # given a funded draft batch and a chargeback freeze
    batch = BatchFactory(project__requester=requester, price_cents=PRICE, overlap=1)
    make_tasks(batch, 2)
    fund(requester, 10_000)
    requester_freeze(requester_id=requester.pk, reason="chargeback dp_1")

    # when
    response = requester_client.post(f"/api/v1/batches/{batch.pk}/publish")

    # then
    assert response.status_code == 409
    assert response.json()["code"] == "requester_frozen"
    batch.refresh_from_db()
    assert (batch.status, batch.published_at, batch.reserved_cents) == (BatchStatus.DRAFT, None, 0)
    assert _requester_money(requester) == (10_000, 0)


def test_frozen_requesters_are_listed_for_admins(requester, staff, client):
    # given one frozen requester and one not
    requester_freeze(requester_id=requester.pk, reason="chargeback dp_1")
    other = RequesterFactory()
    requester_freeze(requester_id=other.pk, reason="chargeback dp_2")
    other.payment_state.is_frozen = False
    other.payment_state.save(update_fields=["is_frozen"])
    client.force_login(staff)

    # when
    response = client.get("/admin/payments/requesteraccountstate/?is_frozen__exact=1")

    # then
    assert response.status_code == 200
    assert [s.requester_id for s in response.context["cl"].result_list] == [requester.pk]


# --- races ------------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_racing_decisions_and_review_pay_the_worker_exactly_once():
    # given an appeal on a rejected answer
    from crowd.quality.appeals import appeal_open
    from crowd.quality.review import assignments_review
    from crowd.services.claims import assignment_claim
    from crowd.services.submissions import assignment_submit
    from tests.concurrency.conftest import counter_mismatches, run_threads
    from tests.concurrency.conftest import open_batch as published_batch

    batch = published_batch(tasks=1, overlap=1, price_cents=PRICE)
    requester = batch.project.requester
    admin = User.objects.create_superuser(email="race-admin@example.com", password="pw-Secret-123")
    worker = WorkerFactory()
    [lease] = assignment_claim(worker=worker, batch=batch, count=1)
    assignment_submit(worker=worker, assignment_id=lease.id, answer="cat", idempotency_key="")
    review = dict(requester=requester, assignment_ids=[lease.id], user_id=requester.user_id)
    assignments_review(**review, verdict="reject", reason="Wrong.")
    appeal = appeal_open(worker=worker, assignment_id=lease.id, message="Cat.")

    def decide(user, as_admin):
        return lambda: appeal_decide(appeal.pk, by_user=user, as_admin=as_admin, overturn=True, note="Ok.")

    # when the requester and an admin overturn, the requester accepts in review and the sweep runs
    failures = run_threads(
        [
            decide(requester.user, False),
            decide(admin, True),
            decide(admin, True),
            lambda: assignments_review(**review, verdict="accept"),
            lambda: appeals_escalate(now=timezone.now() + timedelta(days=4)),
        ]
    )

    # then whatever lost its race was refused with 409; the worker is paid once
    assert all("Conflict" in f or "InsufficientFunds" in f for f in failures), failures
    assert Appeal.objects.get().status == AppealStatus.OVERTURNED
    assert Assignment.objects.get().status == AssignmentStatus.ACCEPTED
    assert _pending(worker) == PRICE
    assert AssignmentEvent.objects.filter(to_status="accepted").count() == 1
    assert counter_mismatches(batch) == []
    assert ledger_reconcile() == []
