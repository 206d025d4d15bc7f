"""Batches API: publish, pause, resume and close, and the transitions the state machine forbids."""

from __future__ import annotations

import pytest

from crowd.enums import AssignmentStatus
from crowd.models import Assignment
from marketplace.enums import BatchStatus
from marketplace.models import Task
from marketplace.services import budget
from tests.factories import AssignmentFactory, BatchFactory, db_snapshot, fund, make_tasks, open_batch
from tests.marketplace.batches_api import BATCH_NOT_FOUND, detail

pytestmark = pytest.mark.django_db


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
    assert response.json() == detail(batch, tasks=2, answers_wanted=6)


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
    assert paused.json() == detail(batch, tasks=1, answers_wanted=3)

    # when
    resumed = requester_client.post(f"/api/v1/batches/{batch.pk}/publish")

    # then
    assert resumed.status_code == 200
    batch.refresh_from_db()
    assert (batch.status, batch.published_at) == (BatchStatus.OPEN, published_at)
    assert resumed.json() == detail(batch, tasks=1, answers_wanted=3)


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
    assert response.json() == detail(batch)


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
    assert response.json() == detail(
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
