"""Permission-aware reads for workers: what a worker may see, and nothing else."""

from __future__ import annotations

from django.db.models import QuerySet

from marketplace.enums import BatchStatus
from marketplace.errors import NotFound
from marketplace.models import Batch, User

from .models import Assignment, Worker

# Workers may act on batches in these states; drafts are invisible to them.
WORKER_VISIBLE = (BatchStatus.OPEN, BatchStatus.PAUSED, BatchStatus.CLOSED)


def worker_of(user: User) -> Worker | None:
    try:
        return user.worker
    except Worker.DoesNotExist:
        return None


def batch_list_for_worker(*, worker: Worker) -> QuerySet[Batch]:
    """Open batches, highest priority first, excluding the worker's own (as a requester)."""
    return (
        Batch.objects.filter(status=BatchStatus.OPEN)
        .exclude(project__requester__user_id=worker.user_id)
        .select_related("project")
        .order_by("-priority", "id")
    )


def batch_get_for_worker(*, worker: Worker, batch_id: int) -> Batch:
    batch = (
        Batch.objects.select_related("project")
        .filter(id=batch_id, status__in=WORKER_VISIBLE)
        .exclude(project__requester__user_id=worker.user_id)
        .first()
    )
    if batch is None:
        raise NotFound("Batch not found.")
    return batch


def assignment_list_for_worker(*, worker: Worker, status: str | None = None) -> QuerySet[Assignment]:
    qs = Assignment.objects.filter(worker=worker).select_related("task").order_by("-id")
    if status:
        qs = qs.filter(status=status)
    return qs


def assignment_get_for_worker(*, worker: Worker, assignment_id: int) -> Assignment:
    assignment = Assignment.objects.select_related("task").filter(id=assignment_id, worker=worker).first()
    if assignment is None:
        raise NotFound("Assignment not found.")
    return assignment
