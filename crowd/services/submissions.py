"""Ending a lease: submit an answer, skip the task, or release it."""

from __future__ import annotations

import json
from typing import Any

from django.db import connection, transaction
from django.db.models import Case, F, Value, When
from django.utils import timezone

from marketplace.enums import BatchStatus, TaskStatus
from marketplace.errors import Conflict, NotFound, ValidationFailed
from marketplace.models import Task
from marketplace.schemas import UNSTORABLE, answer_validator, storable

from ..enums import AssignmentStatus
from ..models import Assignment, Worker
from .leases import slots_return


def _lock_for_worker(*, worker: Worker, assignment_id: int) -> Assignment:
    """The worker's own assignment, row-locked, with its batch and project; anyone else's is 404."""
    assignment = (
        Assignment.objects.select_for_update(of=("self",))
        .select_related("batch__project")
        .filter(id=assignment_id, worker=worker)
        .first()
    )
    if assignment is None:
        raise NotFound("Assignment not found.")
    return assignment


def _expire_now(assignment: Assignment, now: Any) -> None:
    assignment.status = AssignmentStatus.EXPIRED
    assignment.ended_at = now
    assignment.save(update_fields=["status", "ended_at"])
    if not assignment.is_gold:
        slots_return([assignment.task_id])


def _check_active(assignment: Assignment, now: Any) -> Conflict | None:
    """The conflict that stops ending this lease, if any; an overdue lease is expired on the spot."""
    if assignment.status != AssignmentStatus.ACTIVE:
        return Conflict(
            f"The assignment is {assignment.status}.",
            code=f"assignment_{assignment.status}",
            detail={"status": assignment.status},
        )
    if assignment.expires_at <= now:
        _expire_now(assignment, now)
        return Conflict(
            "The lease expired before the answer arrived.",
            code="assignment_expired",
            detail={
                "status": AssignmentStatus.EXPIRED,
                "expires_at": assignment.expires_at.isoformat().replace("+00:00", "Z"),
            },
        )
    return None


def _answer_errors(answer: Any, *, project_id: int, version: Any) -> None:
    errors = [
        f"{e.json_path}: {e.message}" for e in answer_validator(project_id, version).iter_errors(answer)
    ]
    if errors:
        raise ValidationFailed("The answer does not match the answer schema.", detail={"answer": errors})
    if not storable(answer):
        raise ValidationFailed("The answer cannot be stored.", detail={"answer": [UNSTORABLE]})


# The PostgreSQL fast path: read without a lock, then one conditional statement that records the
# answer only if the lease is still this worker's, active and unexpired, and bumps the task's
# counters in the same statement. If the condition fails, the locked path below decides why.
_SUBMIT_READ_SQL = """
SELECT a.status, a.expires_at, a.batch_id, b.status, b.project_id, p.updated_at
FROM crowd_assignment a
JOIN marketplace_batch b ON b.id = a.batch_id
JOIN marketplace_project p ON p.id = b.project_id
WHERE a.id = %(id)s AND a.worker_id = %(worker)s
"""
_SUBMIT_WRITE_SQL = """
WITH upd AS (
    UPDATE crowd_assignment
    SET status = 'submitted', answer = %(answer)s::jsonb, submitted_at = %(now)s, submit_key = %(key)s
    WHERE id = %(id)s AND worker_id = %(worker)s AND status = 'active' AND expires_at > %(now)s
    RETURNING task_id, is_gold
),
bump AS (
    UPDATE marketplace_task t
    SET answers_count = t.answers_count + 1,
        status = CASE WHEN t.answers_count + 1 >= t.overlap THEN 'complete' ELSE t.status END
    FROM upd WHERE t.id = upd.task_id AND NOT upd.is_gold
)
SELECT count(*) FROM upd
"""


def _submit_fast(
    *, worker: Worker, assignment_id: int, answer: Any, idempotency_key: str, now: Any
) -> Assignment | None:
    """Returns the submitted assignment, or None when the locked path must decide."""
    params = {"id": assignment_id, "worker": worker.pk}
    with connection.cursor() as cursor:
        cursor.execute(_SUBMIT_READ_SQL, params)
        row = cursor.fetchone()
        if row is None:
            raise NotFound("Assignment not found.")
        status, expires_at, batch_id, batch_status, project_id, version = row
        if status != AssignmentStatus.ACTIVE or expires_at <= now or batch_status == BatchStatus.CLOSED:
            return None
        _answer_errors(answer, project_id=project_id, version=version)
        cursor.execute(
            _SUBMIT_WRITE_SQL,
            {**params, "answer": json.dumps(answer), "now": now, "key": idempotency_key},
        )
        if cursor.fetchone()[0] != 1:
            return None
    return Assignment(
        id=assignment_id,
        batch_id=batch_id,
        worker=worker,
        status=AssignmentStatus.SUBMITTED,
        answer=answer,
        submitted_at=now,
        submit_key=idempotency_key,
    )


def assignment_submit(
    *, worker: Worker, assignment_id: int, answer: Any, idempotency_key: str = ""
) -> Assignment:
    """Record the worker's answer to their active lease.

    The answer must satisfy the project's ``answer_schema`` (400 with every violation). A retry
    carrying the same ``Idempotency-Key`` as the accepted submit returns that first result; any
    other second submit is 409. An overdue lease is expired (its slot returned) and refused with
    409, as is an answer to a closed batch. Side effect: the task's ``answers_count`` grows and the
    task becomes ``complete`` at its overlap.
    """
    now = timezone.now()
    if connection.vendor == "postgresql":
        done = _submit_fast(
            worker=worker,
            assignment_id=assignment_id,
            answer=answer,
            idempotency_key=idempotency_key,
            now=now,
        )
        if done is not None:
            return done
    return _submit_locked(
        worker=worker, assignment_id=assignment_id, answer=answer, idempotency_key=idempotency_key, now=now
    )


def _submit_locked(
    *, worker: Worker, assignment_id: int, answer: Any, idempotency_key: str, now: Any
) -> Assignment:
    """The portable path: lock the assignment row, decide, write. Also the fast path's referee."""
    conflict: Conflict | None = None
    with transaction.atomic():
        assignment = _lock_for_worker(worker=worker, assignment_id=assignment_id)
        if (
            assignment.status == AssignmentStatus.SUBMITTED
            and idempotency_key
            and assignment.submit_key == idempotency_key
        ):
            return assignment
        conflict = _check_active(assignment, now)
        if conflict is None:
            batch = assignment.batch
            if batch.status == BatchStatus.CLOSED:
                raise Conflict("The batch is closed.", code="batch_closed")
            _answer_errors(answer, project_id=batch.project_id, version=batch.project.updated_at)
            assignment.status = AssignmentStatus.SUBMITTED
            assignment.answer = answer
            assignment.submitted_at = now
            assignment.submit_key = idempotency_key
            assignment.save(update_fields=["status", "answer", "submitted_at", "submit_key"])
            if not assignment.is_gold:
                Task.objects.filter(id=assignment.task_id).update(
                    answers_count=F("answers_count") + 1,
                    status=Case(
                        When(answers_count__gte=F("overlap") - 1, then=Value(TaskStatus.COMPLETE)),
                        default=F("status"),
                    ),
                )
    # Raised after commit so an on-the-spot expiry is kept.
    if conflict is not None:
        raise conflict
    return assignment


def _end_lease(*, worker: Worker, assignment_id: int, status: AssignmentStatus) -> Assignment:
    now = timezone.now()
    with transaction.atomic():
        assignment = _lock_for_worker(worker=worker, assignment_id=assignment_id)
        conflict = _check_active(assignment, now)
        if conflict is None:
            assignment.status = status
            assignment.ended_at = now
            assignment.save(update_fields=["status", "ended_at"])
            if not assignment.is_gold:
                slots_return([assignment.task_id])
    if conflict is not None:
        raise conflict
    return assignment


def assignment_skip(*, worker: Worker, assignment_id: int) -> Assignment:
    """Decline the task: its slot goes back to the pool; this worker will not see it again."""
    return _end_lease(worker=worker, assignment_id=assignment_id, status=AssignmentStatus.SKIPPED)


def assignment_release(*, worker: Worker, assignment_id: int) -> Assignment:
    """Hand the lease back unanswered (not counted as a skip); the slot goes back to the pool."""
    return _end_lease(worker=worker, assignment_id=assignment_id, status=AssignmentStatus.RELEASED)
