"""Permission-aware reads for workers: what a worker may see, and nothing else."""

from __future__ import annotations

from datetime import datetime

from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from marketplace.enums import BatchStatus
from marketplace.errors import NotFound
from marketplace.models import Batch, User

from .enums import AssignmentStatus
from .models import Assignment, Worker
from .quality.restrictions import (
    claim_columns_sql,
    eligibility_flags,
    eligibility_params,
    eligible_batches,
    ensure_eligible,
)
from .quality.training import training_retry_check

# Workers may act on batches in these states; drafts are invisible to them.
WORKER_VISIBLE = (BatchStatus.OPEN, BatchStatus.PAUSED, BatchStatus.CLOSED)


def worker_of(user: User) -> Worker | None:
    try:
        return user.worker
    except Worker.DoesNotExist:
        return None


def batch_list_for_worker(*, worker: Worker) -> QuerySet[Batch]:
    """Open batches, highest priority first, excluding the worker's own (as a requester), those
    a restriction bars them from and those whose filters (skills, reliability) they fail."""
    qs = (
        Batch.objects.filter(status=BatchStatus.OPEN)
        .exclude(project__requester__user_id=worker.user_id)
        .select_related("project")
        .order_by("-priority", "id")
    )
    return eligible_batches(qs, worker=worker, now=timezone.now())


def _visible(*, worker: Worker, batch_id: int) -> QuerySet[Batch]:
    """The batch if a worker may address it at all: published, and not their own."""
    return (
        Batch.objects.select_related("project")
        .filter(id=batch_id, status__in=WORKER_VISIBLE)
        .exclude(project__requester__user_id=worker.user_id)
    )


def batch_get_for_worker(*, worker: Worker, batch_id: int) -> Batch:
    """One batch as the list shows it: a batch the worker is restricted from or whose filters
    they fail is 404, exactly like another tenant's draft, so the detail never shows more than
    the list. (Claiming such a batch says why, with 403: see ``batch_get_for_claim``.)"""
    qs = _visible(worker=worker, batch_id=batch_id)
    batch = eligible_batches(qs, worker=worker, now=timezone.now()).first()
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


_CLAIM_BATCH_SQL = f"""
SELECT b.id, b.project_id, b.status, b.lease_seconds, b.gold_rate, b.max_claims_per_request,
       b.is_training, b.training_skill_id,
       (SELECT count(*) FROM crowd_assignment a
         WHERE a.worker_id = %(worker)s AND a.batch_id = b.id AND a.status = 'active'
           AND a.expires_at > %(now)s),
       EXISTS (SELECT 1 FROM crowd_assignment a
         WHERE a.batch_id = b.id AND a.status = 'active' AND a.expires_at <= %(now)s),
       {claim_columns_sql()}
FROM marketplace_batch b
JOIN marketplace_project p ON p.id = b.project_id
JOIN marketplace_requester r ON r.id = p.requester_id
WHERE b.id = %(batch)s AND b.status IN ('open', 'paused', 'closed') AND r.user_id <> %(user)s
"""


def active_lease_count(*, worker: Worker, batch_id: int, now: datetime) -> int:
    """The worker's unexpired leases in one batch (capped by ``max_claims_per_request``)."""
    return Assignment.objects.filter(
        worker=worker, batch_id=batch_id, status=AssignmentStatus.ACTIVE, expires_at__gt=now
    ).count()


def batch_get_for_claim(*, worker: Worker, batch_id: int) -> tuple[Batch, int, bool]:
    """The batch a worker claims from, how many active leases they hold in it, and whether the
    batch has overdue leases to expire first (hot path). A restriction or an unmet filter is 403.

    On PostgreSQL one hand-written query returns all of it; elsewhere the ORM does it.
    """
    now = timezone.now()
    if connection.vendor != "postgresql":
        batch = _visible(worker=worker, batch_id=batch_id).first()
        if batch is None:
            raise NotFound("Batch not found.")
        restricted, filters_fail = eligibility_flags(worker=worker, batch_id=batch.pk, now=now)
        ensure_eligible(worker=worker, batch=batch, restricted=restricted, filters_fail=filters_fail, now=now)
        training_retry_check(worker_id=worker.pk, batch=batch, now=now)
        return batch, active_lease_count(worker=worker, batch_id=batch.pk, now=now), True
    with connection.cursor() as cursor:
        cursor.execute(
            _CLAIM_BATCH_SQL,
            {**eligibility_params(worker_id=worker.pk, now=now), "batch": batch_id, "user": worker.user_id},
        )
        row = cursor.fetchone()
    if row is None:
        raise NotFound("Batch not found.")
    (pk, project_id, status, lease_seconds, gold_rate, max_claims, is_training, skill_id) = row[:8]
    active, has_overdue, restricted, failing = row[8:]
    batch = Batch(
        id=pk,
        project_id=project_id,
        status=status,
        lease_seconds=lease_seconds,
        gold_rate=gold_rate,
        max_claims_per_request=max_claims,
        is_training=is_training,
        training_skill_id=skill_id,
    )
    if restricted or failing:
        ensure_eligible(worker=worker, batch=batch, restricted=restricted, filters_fail=failing, now=now)
    if is_training:
        # A worker who failed this training (or one for the same skill too recently) is told so.
        training_retry_check(worker_id=worker.pk, batch=batch, now=now)
    return batch, active, has_overdue
