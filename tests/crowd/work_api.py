"""Helpers shared by the worker API tests (``test_work_*_api.py``)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from crowd.models import Assignment
from marketplace.models import Batch, Task
from tests.factories import iso

ASSIGNMENT_NOT_FOUND = {"code": "not_found", "message": "Assignment not found.", "detail": {}}
BATCH_NOT_FOUND = {"code": "not_found", "message": "Batch not found.", "detail": {}}


def _claim(client, batch, count=None):
    body = {} if count is None else {"count": count}
    return client.post(f"/api/v1/work/batches/{batch.pk}/claim", body, format="json")


def _submit(client, assignment_id, answer="cat", key=None):
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    return client.post(
        f"/api/v1/work/assignments/{assignment_id}/submit", {"answer": answer}, format="json", **headers
    )


def _lease(assignment: Assignment) -> dict:
    """A claim item as the worker must see it."""
    return {
        "id": assignment.pk,
        "batch": assignment.batch_id,
        "input": assignment.task.input,
        "expires_at": iso(assignment.expires_at),
    }


def _result(assignment: Assignment) -> dict:
    """The body of submit / skip / release."""
    assignment.refresh_from_db()
    return {
        "id": assignment.pk,
        "batch": assignment.batch_id,
        "status": assignment.status,
        "answer": assignment.answer,
        "submitted_at": iso(assignment.submitted_at),
        "ended_at": iso(assignment.ended_at),
        "explanation": None,  # issue 3: training feedback only
    }


def _mine(assignment: Assignment) -> dict:
    """An item of /work/assignments."""
    assignment.refresh_from_db()
    return {
        "id": assignment.pk,
        "batch": assignment.batch_id,
        "status": assignment.status,
        "input": assignment.task.input,
        "answer": assignment.answer,
        "claimed_at": iso(assignment.claimed_at),
        "expires_at": iso(assignment.expires_at),
        "submitted_at": iso(assignment.submitted_at),
        "ended_at": iso(assignment.ended_at),
        # Issue 3: the verdict (in ``status``), its time and reason, training feedback.
        "reviewed_at": iso(assignment.reviewed_at),
        "review_reason": assignment.review_reason,
        "explanation": None,
    }


def _slots(batch: Batch) -> list[tuple[int, int, str]]:
    return list(
        Task.objects.filter(batch=batch).order_by("id").values_list("slots_taken", "answers_count", "status")
    )


def _one_lease(client, batch) -> Assignment:
    lease_id = _claim(client, batch, 1).json()["assignments"][0]["id"]
    return Assignment.objects.select_related("task").get(pk=lease_id)


def _expire(lease: Assignment) -> Assignment:
    """Move the lease's deadline into the past (no clock mocking needed)."""
    Assignment.objects.filter(pk=lease.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    lease.refresh_from_db()
    return lease
