"""Review: accept / reject / reversal, counters, events, auto-accept, review modes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from crowd.enums import AssignmentStatus
from crowd.models import Assignment, AssignmentEvent
from crowd.quality.review import assignments_auto_accept, assignments_gold_review
from marketplace.enums import ReviewMode, TaskStatus
from marketplace.models import Batch, Task
from tests.concurrency.conftest import counter_mismatches
from tests.factories import WorkerFactory, client_for, db_snapshot, open_batch

pytestmark = pytest.mark.django_db


def _claim(client, batch, count=1):
    return [
        a["id"]
        for a in client.post(
            f"/api/v1/work/batches/{batch.pk}/claim", {"count": count}, format="json"
        ).json()["assignments"]
    ]


def _submit(client, assignment_id, answer="cat"):
    return client.post(f"/api/v1/work/assignments/{assignment_id}/submit", {"answer": answer}, format="json")


def _review(client, ids, verdict, reason=None):
    body = {"ids": ids, "verdict": verdict}
    if reason is not None:
        body["reason"] = reason
    return client.post("/api/v1/assignments/review", body, format="json")


def _answered_batch(requester, *, overlap=1, tasks=2, **fields):
    batch = open_batch(project__requester=requester, regular=tasks, overlap=overlap, **fields)
    worker = WorkerFactory()
    client = client_for(worker.user)
    ids = _claim(client, batch, tasks)
    for pk in ids:
        assert _submit(client, pk).status_code == 200
    return batch, worker, client, sorted(ids)


def test_reject_reopens_the_slot_and_the_worker_sees_the_reason(requester, requester_client):
    # given a complete task (overlap 1)
    batch, _, worker_client, (a1, _) = _answered_batch(requester)
    task = Assignment.objects.get(pk=a1).task
    assert task.status == TaskStatus.COMPLETE

    # when
    response = _review(requester_client, [a1], "reject", "Wrong label.")

    # then
    assert response.status_code == 200
    body = response.json()["assignments"]
    assert [(r["id"], r["status"], r["review_reason"]) for r in body] == [(a1, "rejected", "Wrong label.")]
    task.refresh_from_db()
    assert (task.status, task.slots_taken, task.answers_count) == (TaskStatus.OPEN, 0, 0)
    assert counter_mismatches(batch) == []
    mine = worker_client.get(f"/api/v1/work/assignments/{a1}").json()
    assert (mine["status"], mine["review_reason"]) == ("rejected", "Wrong label.")
    assert mine["reviewed_at"] is not None
    # and another worker can now answer the task
    other = client_for(WorkerFactory().user)
    assert len(_claim(other, batch, 1)) == 1
    assert list(
        AssignmentEvent.objects.filter(assignment_id=a1).values_list(
            "from_status", "to_status", "actor", "reason"
        )
    ) == [("active", "submitted", "worker", ""), ("submitted", "rejected", "requester", "Wrong label.")]


def test_reversal_takes_the_slot_again_growing_overlap_if_refilled(requester, requester_client):
    # given a rejected answer whose slot another worker filled
    batch, _, _, (a1, _) = _answered_batch(requester)
    _review(requester_client, [a1], "reject", "Wrong.")
    other = client_for(WorkerFactory().user)
    (b1,) = _claim(other, batch, 1)
    _submit(other, b1)

    # when the requester changes their mind
    response = _review(requester_client, [a1], "accept")

    # then both answers count; the task grew to hold them
    assert response.status_code == 200
    task = Task.objects.get(pk=Assignment.objects.get(pk=a1).task_id)
    assert (task.overlap, task.slots_taken, task.answers_count, task.status) == (2, 2, 2, TaskStatus.COMPLETE)
    assert counter_mismatches(batch) == []


def test_double_review_is_409_and_changes_nothing(requester, requester_client):
    # given
    _, _, _, (a1, a2) = _answered_batch(requester)
    _review(requester_client, [a1], "accept")
    before = db_snapshot()
    events = AssignmentEvent.objects.count()

    # when a batch review holds one already-accepted answer
    response = _review(requester_client, [a1, a2], "reject", "No.")

    # then all or nothing
    assert response.status_code == 409
    assert response.json() == {
        "code": "invalid_transition",
        "message": "Some assignments cannot take this verdict; nothing was changed.",
        "detail": {"errors": {str(a1): "The assignment is accepted; it cannot become rejected."}},
    }
    assert db_snapshot() == before
    assert AssignmentEvent.objects.count() == events


def test_review_of_another_requesters_assignment_is_404(requester, requester_client):
    # given an answer in someone else's batch
    from tests.factories import RequesterFactory

    _, _, _, (theirs, _) = _answered_batch(RequesterFactory())
    _, _, _, (mine, _) = _answered_batch(requester)
    before = db_snapshot()

    # when
    response = _review(requester_client, [mine, theirs, 999_999_999], "accept")

    # then
    assert response.status_code == 404
    assert response.json() == {
        "code": "not_found",
        "message": "Assignment not found.",
        "detail": {"ids": sorted([theirs, 999_999_999])},
    }
    assert db_snapshot() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ids": [1], "verdict": "reject"}, "reason"),
        ({"ids": [1], "verdict": "reject", "reason": "  "}, "reason"),
        ({"ids": [], "verdict": "accept"}, "ids"),
        ({"ids": [1], "verdict": "maybe"}, "verdict"),
    ],
)
def test_bad_review_input_is_400(requester_client, body, field):
    response = requester_client.post("/api/v1/assignments/review", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["detail"]


def test_review_of_an_active_lease_is_409(requester, requester_client):
    batch = open_batch(project__requester=requester, regular=1)
    (lease,) = _claim(client_for(WorkerFactory().user), batch)
    response = _review(requester_client, [lease], "accept")
    assert response.status_code == 409
    assert Assignment.objects.get(pk=lease).status == AssignmentStatus.ACTIVE


def test_workers_cannot_review(worker_client):
    response = _review(worker_client, [1], "accept")
    assert response.status_code == 403


def test_auto_accept_sweep_accepts_overdue_answers_once(requester):
    # given one answer past its batch's delay and one not yet
    batch, _, _, (a1, a2) = _answered_batch(requester, auto_accept_after_hours=10)
    Assignment.objects.filter(pk=a1).update(submitted_at=timezone.now() - timedelta(hours=11))

    # when run twice
    first, second = assignments_auto_accept(), assignments_auto_accept()

    # then
    assert (first, second) == (1, 0)
    statuses = dict(Assignment.objects.filter(batch=batch).values_list("id", "status"))
    assert statuses == {a1: "accepted", a2: "submitted"}
    event = AssignmentEvent.objects.get(assignment_id=a1, to_status="accepted")
    assert (event.actor, event.reason) == ("system", "Accepted automatically: not reviewed within 10 hours.")


def test_auto_review_mode_accepts_at_submit(requester):
    batch = open_batch(project__requester=requester, regular=1, review_mode=ReviewMode.AUTO)
    client = client_for(WorkerFactory().user)
    (lease,) = _claim(client, batch)
    response = _submit(client, lease)
    assert response.json()["status"] == "accepted"
    assert counter_mismatches(batch) == []


def test_gold_review_mode_answers_gold_like_regular_and_decides_both_a_day_later(requester):
    # given a gold-review batch: a worker holds two control tasks and one regular task
    batch = open_batch(
        project__requester=requester, regular=1, gold=2, gold_rate=1.0, review_mode=ReviewMode.GOLD, overlap=1
    )
    client = client_for(WorkerFactory().user)
    right, wrong = _claim(client, batch, 2)  # all gold at gold_rate 1.0
    Batch.objects.filter(pk=batch.pk).update(gold_rate=0.0)
    (regular,) = _claim(client, batch)

    # when one control answer is right, one wrong, and the regular one answered
    answers = [_submit(client, right, "cat"), _submit(client, wrong, "dog"), _submit(client, regular, "dog")]

    # then the three responses are alike: same fields, all still waiting for their verdict
    bodies = [r.json() for r in answers]
    assert [r.status_code for r in answers] == [200, 200, 200]
    assert {tuple(b) for b in bodies} == {
        ("id", "batch", "status", "answer", "submitted_at", "ended_at", "explanation")
    }
    assert [(b["status"], b["explanation"]) for b in bodies] == [("submitted", None)] * 3
    assert Assignment.objects.get(pk=wrong).gold_correct is False

    # and nothing is decided before the reveal delay (24 h) has passed ...
    now = timezone.now()
    assert assignments_gold_review(now=now + timedelta(hours=23)) == 0
    assert set(Assignment.objects.values_list("status", flat=True)) == {"submitted"}

    # ... after it, one sweep decides all three at the same moment, by the control answers' scores
    assert assignments_gold_review(now=now + timedelta(hours=24, minutes=1)) == 3
    assert assignments_gold_review(now=now + timedelta(hours=48)) == 0  # a re-run decides nothing
    decided = {a.pk: (a.status, a.review_reason, a.reviewed_at) for a in Assignment.objects.all()}
    assert decided == {
        right: ("accepted", "", now + timedelta(hours=24, minutes=1)),
        wrong: (
            "rejected",
            "The answer did not match the expected answer.",
            now + timedelta(hours=24, minutes=1),
        ),
        regular: ("accepted", "", now + timedelta(hours=24, minutes=1)),
    }
    assert set(
        AssignmentEvent.objects.filter(to_status__in=["accepted", "rejected"]).values_list("actor", flat=True)
    ) == {"system"}


def test_the_auto_accept_sweep_leaves_gold_review_answers_to_the_gold_review(requester):
    # given a gold-review batch that would auto-accept after one hour, and a wrong control answer
    batch = open_batch(
        project__requester=requester,
        regular=1,
        gold=1,
        gold_rate=1.0,
        review_mode=ReviewMode.GOLD,
        auto_accept_after_hours=1,
    )
    client = client_for(WorkerFactory().user)
    (wrong,) = _claim(client, batch)
    _submit(client, wrong, "dog")

    # when the auto-accept sweep runs two hours later, it does not pay the wrong answer
    assert assignments_auto_accept(now=timezone.now() + timedelta(hours=2)) == 0
    assert Assignment.objects.get(pk=wrong).status == "submitted"


def test_every_transition_writes_an_event(requester):
    batch = open_batch(project__requester=requester, regular=4, overlap=1)
    client = client_for(WorkerFactory().user)
    a, b, c, d = sorted(_claim(client, batch, 4))
    _submit(client, a)
    client.post(f"/api/v1/work/assignments/{b}/skip")
    client.post(f"/api/v1/work/assignments/{c}/release")
    Assignment.objects.filter(pk=d).update(expires_at=timezone.now() - timedelta(seconds=1))
    _submit(client, d)
    moves = set(AssignmentEvent.objects.values_list("assignment_id", "from_status", "to_status"))
    assert moves == {
        (a, "active", "submitted"),
        (b, "active", "skipped"),
        (c, "active", "released"),
        (d, "active", "expired"),
    }
