"""Batches API: create, list, read with progress, and edit."""

from __future__ import annotations

import pytest

from crowd.enums import AssignmentStatus
from marketplace.enums import BatchStatus, TaskStatus
from marketplace.models import Batch, Task
from tests.factories import (
    AssignmentFactory,
    BatchFactory,
    ProjectFactory,
    db_snapshot,
    iso,
    make_tasks,
    open_batch,
)
from tests.marketplace.batches_api import BATCH_NOT_FOUND, body, detail

pytestmark = pytest.mark.django_db


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
    assert response.json() == body(batch)
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
        "results": [body(second), body(first)],
    }


def test_get_batch_of_a_fresh_draft_has_zero_progress(batch, requester_client):
    # when
    response = requester_client.get(f"/api/v1/batches/{batch.pk}")

    # then
    assert response.status_code == 200
    assert response.json() == detail(batch)


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
    assert response.json() == detail(
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
    assert response.json() == detail(batch, tasks=2, gold_tasks=1, answers_wanted=10)
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
    assert response.json() == detail(batch, tasks=1, answers_wanted=3)


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
