"""Batches API: the requester's listing of answers, under per-requester worker pseudonyms."""

from __future__ import annotations

import pytest
from django.utils import timezone

from crowd.models import Assignment
from marketplace.enums import BatchStatus
from marketplace.models import Task
from marketplace.selectors import worker_pseudonym
from tests.factories import (
    AssignmentFactory,
    BatchFactory,
    WorkerFactory,
    client_for,
    iso,
    make_tasks,
    open_batch,
)
from tests.marketplace.batches_api import BATCH_NOT_FOUND

pytestmark = pytest.mark.django_db


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
