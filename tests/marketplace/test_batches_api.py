"""Batches API: create, list, read with progress, edit, the lifecycle, and the answers listing."""

from __future__ import annotations

import pytest
from django.utils import timezone

from crowd.enums import AssignmentStatus
from crowd.models import Assignment
from marketplace.enums import BatchStatus, TaskStatus
from marketplace.models import Batch, Task
from marketplace.selectors import worker_pseudonym
from marketplace.services import budget
from tests.factories import (
    AssignmentFactory,
    BatchFactory,
    ProjectFactory,
    WorkerFactory,
    client_for,
    db_snapshot,
    fund,
    iso,
    make_tasks,
    open_batch,
)

pytestmark = pytest.mark.django_db

BATCH_NOT_FOUND = {"code": "not_found", "message": "Batch not found.", "detail": {}}
NO_PROGRESS = {
    "tasks": 0,
    "gold_tasks": 0,
    "tasks_complete": 0,
    "answers_wanted": 0,
    "assignments_active": 0,
    "assignments_submitted": 0,
    "assignments_expired": 0,
    "assignments_skipped": 0,
    "assignments_released": 0,
    "assignments_accepted": 0,
    "assignments_rejected": 0,
    "gold_answers": 0,
}


def _body(batch: Batch) -> dict:
    batch.refresh_from_db()
    return {
        "id": batch.pk,
        "project": batch.project_id,
        "name": batch.name,
        "status": batch.status,
        "price_cents": batch.price_cents,
        "currency": batch.currency,
        "overlap": batch.overlap,
        "lease_seconds": batch.lease_seconds,
        "gold_rate": batch.gold_rate,
        "max_claims_per_request": batch.max_claims_per_request,
        "priority": batch.priority,
        # Quality control (issue 3).
        "review_mode": batch.review_mode,
        "auto_accept_after_hours": batch.auto_accept_after_hours,
        "min_reliability": batch.min_reliability,
        "filters": [{"skill": f.skill_id, "op": f.op, "value": f.value} for f in batch.skill_filters.all()],
        "is_training": batch.is_training,
        "training_skill": batch.training_skill_id,
        "training_pass_mark": batch.training_pass_mark,
        "training_retry_hours": batch.training_retry_hours,
        # Consensus and dynamic overlap (issue 4).
        "aggregation_method": batch.aggregation_method,
        "min_overlap": batch.min_overlap,
        "max_overlap": batch.max_overlap,
        "target_confidence": batch.target_confidence,
        "created_at": iso(batch.created_at),
        "updated_at": iso(batch.updated_at),
        "published_at": iso(batch.published_at),
        "closed_at": iso(batch.closed_at),
    }


def _detail(batch: Batch, **progress: int) -> dict:
    return {**_body(batch), "progress": {**NO_PROGRESS, **progress}}


# --- create ---------------------------------------------------------------------------------


def test_create_batch_with_defaults(project, requester_client):
    # when
    response = requester_client.post(
        "/api/v1/batches", {"project": project.pk, "name": "Round 1", "price_cents": 12}, format="json"
    )

    # then
    assert response.status_code == 201
    batch = Batch.objects.get()
    assert response.json() == {
        "id": batch.pk,
        "project": project.pk,
        "name": "Round 1",
        "status": "draft",
        "price_cents": 12,
        "currency": "USD",
        "overlap": 3,
        "lease_seconds": 600,
        "gold_rate": 0.0,
        "max_claims_per_request": 10,
        "priority": 0,
        # Quality control defaults (issue 3).
        "review_mode": "manual",
        "auto_accept_after_hours": 72,
        "min_reliability": None,
        "filters": [],
        "is_training": False,
        "training_skill": None,
        "training_pass_mark": 0.8,
        "training_retry_hours": 24,
        # Consensus defaults (issue 4): Dawid-Skene, fixed overlap.
        "aggregation_method": "dawid_skene",
        "min_overlap": None,
        "max_overlap": None,
        "target_confidence": None,
        "created_at": iso(batch.created_at),
        "updated_at": iso(batch.updated_at),
        "published_at": None,
        "closed_at": None,
    }


def test_create_batch_with_every_setting(project, requester_client):
    # given
    payload = {
        "project": project.pk,
        "name": "Round 2",
        "price_cents": 30,
        "currency": "USD",
        "overlap": 5,
        "lease_seconds": 120,
        "gold_rate": 0.25,
        "max_claims_per_request": 4,
        "priority": 7,
    }

    # when
    response = requester_client.post("/api/v1/batches", payload, format="json")

    # then
    assert response.status_code == 201
    batch = Batch.objects.get()
    assert response.json() == _body(batch)
    assert {k: response.json()[k] for k in payload} == payload


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"price_cents": None}, {"price_cents": ["This field may not be null."]}),
        ({"price_cents": -1}, {"price_cents": ["Ensure this value is greater than or equal to 0."]}),
        ({"currency": "EUR"}, {"currency": ['"EUR" is not a valid choice.']}),
        ({"overlap": 0}, {"overlap": ["Ensure this value is greater than or equal to 1."]}),
        ({"lease_seconds": 5}, {"lease_seconds": ["Ensure this value is greater than or equal to 10."]}),
        ({"gold_rate": 1.5}, {"gold_rate": ["Ensure this value is less than or equal to 1.0."]}),
        (
            {"max_claims_per_request": 0},
            {"max_claims_per_request": ["Ensure this value is greater than or equal to 1."]},
        ),
        ({"project": 999999999}, {"project": ['Invalid pk "999999999" - object does not exist.']}),
    ],
)
def test_create_batch_with_invalid_fields_is_400(project, requester_client, change, detail):
    # given
    payload = {"project": project.pk, "name": "Bad", "price_cents": 5, **change}
    before = db_snapshot()

    # when
    response = requester_client.post("/api/v1/batches", payload, format="json")

    # then
    assert response.status_code == 400
    assert response.json() == {"code": "invalid", "message": "Invalid input.", "detail": detail}
    assert db_snapshot() == before


def test_create_batch_without_required_fields_is_400(requester_client):
    # given
    before = db_snapshot()

    # when
    response = requester_client.post("/api/v1/batches", {}, format="json")

    # then
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "message": "Invalid input.",
        "detail": {
            "project": ["This field is required."],
            "name": ["This field is required."],
            "price_cents": ["This field is required."],
        },
    }
    assert db_snapshot() == before


def test_create_batch_in_another_requesters_project_is_refused_like_a_missing_one(requester_client):
    # given
    theirs = ProjectFactory()
    before = db_snapshot()

    # when
    response = requester_client.post(
        "/api/v1/batches", {"project": theirs.pk, "name": "Sneaky", "price_cents": 5}, format="json"
    )

    # then
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "message": "Invalid input.",
        "detail": {"project": [f'Invalid pk "{theirs.pk}" - object does not exist.']},
    }
    assert db_snapshot() == before


# --- list and read --------------------------------------------------------------------------


def test_list_batches_shows_only_mine_newest_first(requester, project, requester_client):
    # given
    first = BatchFactory(project=project)
    second = BatchFactory(project=ProjectFactory(requester=requester), status=BatchStatus.OPEN)
    BatchFactory()

    # when
    response = requester_client.get("/api/v1/batches")

    # then
    assert response.status_code == 200
    assert response.json() == {
        "count": 2,
        "next": None,
        "previous": None,
        "results": [_body(second), _body(first)],
    }


def test_get_batch_of_a_fresh_draft_has_zero_progress(batch, requester_client):
    # when
    response = requester_client.get(f"/api/v1/batches/{batch.pk}")

    # then
    assert response.status_code == 200
    assert response.json() == _detail(batch)


def test_get_batch_counts_progress(project, requester_client):
    # given a batch of 3 regular tasks (overlap 2) and 2 gold tasks
    batch = open_batch(project=project, regular=3, gold=2, overlap=2)
    t1, t2, t3, g1, g2 = Task.objects.filter(batch=batch).order_by("id")
    Task.objects.filter(pk=t1.pk).update(slots_taken=2, answers_count=2, status=TaskStatus.COMPLETE)
    Task.objects.filter(pk=t2.pk).update(slots_taken=2, answers_count=1)
    done = AssignmentStatus.SUBMITTED
    for task, status in [
        (t1, done),
        (t1, done),
        (t2, done),
        (t2, AssignmentStatus.ACTIVE),
        (t3, AssignmentStatus.EXPIRED),
        (t3, AssignmentStatus.SKIPPED),
        (t3, AssignmentStatus.RELEASED),
        (g1, done),
        (g2, done),
        (g2, AssignmentStatus.SKIPPED),
    ]:
        AssignmentFactory(task=task, status=status)
    BatchFactory(project=project)  # another batch's numbers stay out

    # when
    response = requester_client.get(f"/api/v1/batches/{batch.pk}")

    # then
    assert response.status_code == 200
    assert response.json() == _detail(
        batch,
        tasks=3,
        gold_tasks=2,
        tasks_complete=1,
        answers_wanted=6,
        assignments_active=1,
        assignments_submitted=5,
        assignments_expired=1,
        assignments_skipped=2,
        assignments_released=1,
        gold_answers=2,
    )


def test_get_another_requesters_batch_is_404(requester_client):
    # given
    theirs = open_batch(regular=1)

    # when
    response = requester_client.get(f"/api/v1/batches/{theirs.pk}")

    # then
    assert response.status_code == 404
    assert response.json() == BATCH_NOT_FOUND


# --- edit -----------------------------------------------------------------------------------


def test_patch_draft_may_change_price_currency_and_overlap(batch, requester_client):
    # given
    make_tasks(batch, 2, gold=1)

    # when
    response = requester_client.patch(
        f"/api/v1/batches/{batch.pk}",
        {"price_cents": 9, "currency": "USD", "overlap": 5, "name": "Renamed"},
        format="json",
    )

    # then
    assert response.status_code == 200
    batch.refresh_from_db()
    assert (batch.price_cents, batch.overlap, batch.name) == (9, 5, "Renamed")
    assert response.json() == _detail(batch, tasks=2, gold_tasks=1, answers_wanted=10)
    assert sorted(Task.objects.filter(batch=batch, is_gold=False).values_list("overlap", flat=True)) == [5, 5]


@pytest.mark.parametrize("status", [BatchStatus.OPEN, BatchStatus.PAUSED])
def test_patch_price_or_overlap_after_publishing_is_409(project, requester_client, status):
    # given
    batch = open_batch(project=project, regular=2)
    Batch.objects.filter(pk=batch.pk).update(status=status)
    before = db_snapshot()

    # when
    response = requester_client.patch(
        f"/api/v1/batches/{batch.pk}", {"price_cents": 50, "overlap": 1, "name": "Renamed"}, format="json"
    )

    # then
    assert response.status_code == 409
    assert response.json() == {
        "code": "batch_not_draft",
        "message": "Price, currency and overlap can only change while the batch is a draft.",
        "detail": {"overlap": ["Only editable in draft."], "price_cents": ["Only editable in draft."]},
    }
    assert db_snapshot() == before


def test_patch_open_batch_may_change_other_settings_and_resend_the_same_price(project, requester_client):
    # given
    batch = open_batch(project=project, regular=1, price_cents=5)

    # when
    response = requester_client.patch(
        f"/api/v1/batches/{batch.pk}",
        {"price_cents": 5, "name": "Renamed", "priority": 3, "lease_seconds": 60, "gold_rate": 0.1},
        format="json",
    )

    # then
    assert response.status_code == 200
    batch.refresh_from_db()
    assert (batch.name, batch.priority, batch.lease_seconds, batch.gold_rate) == ("Renamed", 3, 60, 0.1)
    assert response.json() == _detail(batch, tasks=1, answers_wanted=3)


def test_patch_cannot_move_the_batch_or_change_its_status(project, batch, requester_client):
    # given
    other_project = ProjectFactory(requester=project.requester)

    # when
    response = requester_client.patch(
        f"/api/v1/batches/{batch.pk}",
        {"project": other_project.pk, "status": "open", "published_at": "2020-01-01T00:00:00Z"},
        format="json",
    )

    # then
    assert response.status_code == 200
    batch.refresh_from_db()
    assert (batch.project_id, batch.status, batch.published_at) == (project.pk, "draft", None)


def test_patch_closed_batch_is_409(project, requester_client):
    # given
    batch = BatchFactory(project=project, status=BatchStatus.CLOSED)
    before = db_snapshot()

    # when
    response = requester_client.patch(f"/api/v1/batches/{batch.pk}", {"name": "Renamed"}, format="json")

    # then
    assert response.status_code == 409
    assert response.json() == {
        "code": "batch_closed",
        "message": "A closed batch cannot be edited.",
        "detail": {},
    }
    assert db_snapshot() == before


def test_patch_with_invalid_values_is_400(batch, requester_client):
    # given
    before = db_snapshot()

    # when
    response = requester_client.patch(f"/api/v1/batches/{batch.pk}", {"gold_rate": -0.1}, format="json")

    # then
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "message": "Invalid input.",
        "detail": {"gold_rate": ["Ensure this value is greater than or equal to 0.0."]},
    }
    assert db_snapshot() == before


def test_patch_another_requesters_batch_is_404(requester_client):
    # given
    theirs = BatchFactory()
    before = db_snapshot()

    # when
    response = requester_client.patch(f"/api/v1/batches/{theirs.pk}", {"price_cents": 1}, format="json")

    # then
    assert response.status_code == 404
    assert response.json() == BATCH_NOT_FOUND
    assert db_snapshot() == before


# --- lifecycle ------------------------------------------------------------------------------


def _invalid_transition(current: str, target: str) -> dict:
    return {
        "code": "invalid_transition",
        "message": f"Cannot move a batch from {current} to {target}.",
        "detail": {"status": current, "target": target},
    }


def test_publish_draft_opens_it(batch, requester_client):
    # given two tasks wanted 3 times and exactly the money for their answers and fees
    make_tasks(batch, 2)
    fund(batch.project.requester, budget.batch_required_cents(batch))

    # when
    response = requester_client.post(f"/api/v1/batches/{batch.pk}/publish")

    # then
    assert response.status_code == 200
    batch.refresh_from_db()
    assert batch.status == BatchStatus.OPEN
    assert batch.published_at is not None
    assert response.json() == _detail(batch, tasks=2, answers_wanted=6)


def test_publish_twice_is_409_invalid_transition(batch, requester_client):
    # given
    make_tasks(batch, 1)
    fund(batch.project.requester, budget.batch_required_cents(batch))
    requester_client.post(f"/api/v1/batches/{batch.pk}/publish")
    before = db_snapshot()

    # when
    response = requester_client.post(f"/api/v1/batches/{batch.pk}/publish")

    # then
    assert response.status_code == 409
    assert response.json() == _invalid_transition("open", "open")
    assert db_snapshot() == before


@pytest.mark.parametrize("gold", [0, 3])
def test_publish_without_regular_tasks_is_409(batch, requester_client, gold):
    # given
    make_tasks(batch, 0, gold=gold)
    before = db_snapshot()

    # when
    response = requester_client.post(f"/api/v1/batches/{batch.pk}/publish")

    # then
    assert response.status_code == 409
    assert response.json() == {
        "code": "no_tasks",
        "message": "Upload at least one non-gold task before publishing.",
        "detail": {},
    }
    assert db_snapshot() == before


def test_pause_and_resume(project, requester_client):
    # given
    batch = open_batch(project=project, regular=1)
    published_at = batch.published_at

    # when
    paused = requester_client.post(f"/api/v1/batches/{batch.pk}/pause")

    # then
    assert paused.status_code == 200
    batch.refresh_from_db()
    assert batch.status == BatchStatus.PAUSED
    assert paused.json() == _detail(batch, tasks=1, answers_wanted=3)

    # when
    resumed = requester_client.post(f"/api/v1/batches/{batch.pk}/publish")

    # then
    assert resumed.status_code == 200
    batch.refresh_from_db()
    assert (batch.status, batch.published_at) == (BatchStatus.OPEN, published_at)
    assert resumed.json() == _detail(batch, tasks=1, answers_wanted=3)


@pytest.mark.parametrize(
    ("status", "action", "target"),
    [
        (BatchStatus.DRAFT, "pause", "paused"),
        (BatchStatus.PAUSED, "pause", "paused"),
        (BatchStatus.CLOSED, "publish", "open"),
        (BatchStatus.CLOSED, "pause", "paused"),
        (BatchStatus.CLOSED, "close", "closed"),
    ],
)
def test_transitions_the_state_machine_forbids_are_409(project, requester_client, status, action, target):
    # given
    batch = BatchFactory(project=project, status=status)
    make_tasks(batch, 1)
    before = db_snapshot()

    # when
    response = requester_client.post(f"/api/v1/batches/{batch.pk}/{action}")

    # then
    assert response.status_code == 409
    assert response.json() == _invalid_transition(status, target)
    assert db_snapshot() == before


@pytest.mark.parametrize("status", [BatchStatus.DRAFT, BatchStatus.OPEN, BatchStatus.PAUSED])
def test_close_from_any_live_state(project, requester_client, status):
    # given
    batch = BatchFactory(project=project, status=status)

    # when
    response = requester_client.post(f"/api/v1/batches/{batch.pk}/close")

    # then
    assert response.status_code == 200
    batch.refresh_from_db()
    assert batch.status == BatchStatus.CLOSED
    assert batch.closed_at is not None
    assert response.json() == _detail(batch)


def test_close_releases_active_leases_and_returns_their_slots(project, requester_client):
    # given
    batch = open_batch(project=project, regular=2, gold=1)
    regular, _, gold = Task.objects.filter(batch=batch).order_by("id")
    Task.objects.filter(pk=regular.pk).update(slots_taken=2, answers_count=1)
    submitted = AssignmentFactory(task=regular, status=AssignmentStatus.SUBMITTED, answer="cat")
    active = AssignmentFactory(task=regular)
    active_gold = AssignmentFactory(task=gold)

    # when
    response = requester_client.post(f"/api/v1/batches/{batch.pk}/close")

    # then
    assert response.status_code == 200
    batch.refresh_from_db()
    assert response.json() == _detail(
        batch, tasks=2, gold_tasks=1, answers_wanted=6, assignments_submitted=1, assignments_released=2
    )
    statuses = dict(Assignment.objects.values_list("id", "status"))
    assert statuses == {submitted.pk: "submitted", active.pk: "released", active_gold.pk: "released"}
    assert Assignment.objects.get(pk=active.pk).ended_at == batch.closed_at
    regular.refresh_from_db()
    gold.refresh_from_db()
    assert (regular.slots_taken, regular.answers_count) == (1, 1)
    assert (gold.slots_taken, gold.answers_count) == (0, 0)


@pytest.mark.parametrize("action", ["publish", "pause", "close"])
def test_transitions_on_another_requesters_batch_are_404(requester_client, action):
    # given
    theirs = open_batch(regular=1)
    before = db_snapshot()

    # when
    response = requester_client.post(f"/api/v1/batches/{theirs.pk}/{action}")

    # then
    assert response.status_code == 404
    assert response.json() == BATCH_NOT_FOUND
    assert db_snapshot() == before


# --- answers --------------------------------------------------------------------------------


def _answer(assignment: Assignment, requester_id: int) -> dict:
    assignment.refresh_from_db()
    return {
        "id": assignment.pk,
        "task": assignment.task_id,
        "external_id": assignment.task.external_id,
        "is_gold": assignment.is_gold,
        "worker": worker_pseudonym(requester_id=requester_id, worker_id=assignment.worker_id),
        "status": assignment.status,
        "answer": assignment.answer,
        "claimed_at": iso(assignment.claimed_at),
        "expires_at": iso(assignment.expires_at),
        "submitted_at": iso(assignment.submitted_at),
        "ended_at": iso(assignment.ended_at),
        # Quality control (issue 3): the requester sees scores and verdicts.
        "gold_correct": assignment.gold_correct,
        "gold_score": assignment.gold_score,
        "reviewed_at": iso(assignment.reviewed_at),
        "review_reason": assignment.review_reason,
    }


def test_list_submitted_answers_with_worker_pseudonyms(requester, project, requester_client):
    # given
    batch = open_batch(project=project, regular=2, gold=1)
    t1, t2, gold = Task.objects.filter(batch=batch).order_by("id")
    Task.objects.filter(pk=t1.pk).update(external_id="ext-1")
    ada, bob = WorkerFactory(user__email="ada@example.com"), WorkerFactory(user__email="bob@example.com")
    now = timezone.now()
    a1 = AssignmentFactory(task=t1, worker=ada, status="submitted", answer="cat", submitted_at=now)
    AssignmentFactory(task=t2, worker=ada)
    a3 = AssignmentFactory(task=t2, worker=bob, status="submitted", answer="dog", submitted_at=now)
    a4 = AssignmentFactory(task=gold, worker=bob, status="submitted", answer="other", submitted_at=now)
    AssignmentFactory(task=t1, worker=bob, status="skipped", ended_at=now)
    other_batch_task = make_tasks(BatchFactory(project=project, status=BatchStatus.OPEN), 1)[0]
    AssignmentFactory(task=other_batch_task, worker=bob, status="submitted", answer="cat")

    # when
    response = requester_client.get(f"/api/v1/batches/{batch.pk}/assignments?status=submitted")

    # then
    assert response.status_code == 200
    assert response.json() == {
        "next": None,
        "previous": None,
        "results": [_answer(a, requester.pk) for a in (a1, a3, a4)],
    }
    shown = {row["worker"] for row in response.json()["results"]}
    assert len(shown) == 2
    assert all(name.startswith("w-") and len(name) == 14 for name in shown)
    assert not shown & {str(ada.pk), str(bob.pk), str(ada.user_id), "ada@example.com", "bob@example.com"}
    assert "@example.com" not in response.content.decode()


def test_the_same_worker_has_different_pseudonyms_for_different_requesters():
    # given
    worker = WorkerFactory()
    mine, theirs = open_batch(regular=1), open_batch(regular=1)
    for batch in (mine, theirs):
        AssignmentFactory(task=batch.tasks.get(), worker=worker, status="submitted", answer="cat")

    # when
    names = [
        client_for(batch.project.requester.user)
        .get(f"/api/v1/batches/{batch.pk}/assignments")
        .json()["results"][0]["worker"]
        for batch in (mine, theirs)
    ]

    # then
    assert names[0] != names[1]


def test_answers_are_cursor_paginated(requester, project, requester_client):
    # given
    batch = open_batch(project=project, regular=5)
    assignments = [
        AssignmentFactory(task=task, status="submitted", answer="cat") for task in batch.tasks.order_by("id")
    ]

    # when
    pages, url = [], f"/api/v1/batches/{batch.pk}/assignments?status=submitted&page_size=2"
    while url:
        response = requester_client.get(url)
        assert response.status_code == 200
        pages.append([row["id"] for row in response.json()["results"]])
        url = response.json()["next"]

    # then
    assert pages == [[a.pk for a in assignments[0:2]], [a.pk for a in assignments[2:4]], [assignments[4].pk]]


def test_answers_with_an_unknown_status_is_400(batch, requester_client):
    # when
    response = requester_client.get(f"/api/v1/batches/{batch.pk}/assignments?status=done")

    # then
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "message": "Unknown status.",
        "detail": {
            "status": ["Choose one of: active, submitted, expired, skipped, released, accepted, rejected."]
        },
    }


def test_answers_of_another_requesters_batch_are_404(requester_client):
    # given
    theirs = open_batch(regular=1)
    AssignmentFactory(task=theirs.tasks.get(), status="submitted", answer="cat")

    # when
    response = requester_client.get(f"/api/v1/batches/{theirs.pk}/assignments")

    # then
    assert response.status_code == 404
    assert response.json() == BATCH_NOT_FOUND
