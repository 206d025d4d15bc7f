"""Training batches: every task carries a known answer; finishing one grants a skill value.

A worker finishes when they have answered every task of the batch that carries an answer. The
skill value is the accuracy in percent, granted if it reaches the pass mark. One result per
(worker, training batch).

Retrying after a failure takes a *fresh* training batch for the same skill, never the same one.
A worker never holds the same task twice (the unique (task, worker) constraint, which the claim
relies on for overlap and gold), and finishing means having answered every task of the batch: a
worker who failed has seen all of its tasks, so there is nothing left to serve them. Re-serving
them would need attempt-keyed assignments, i.e. relaxing the constraint the claim's hot path
leans on, and answering the same items again after reading their explanations would measure
recall rather than skill. So:

- ``training_retry_check`` refuses (409 ``training_retry_not_available``) a worker coming back to
  a training batch they failed, and a worker taking another training batch for the same skill
  less than ``training_retry_hours`` (of the failed batch) after the failure;
- ``training_finish_if_done`` applies the same delay, so a run finished too early grants nothing
  even where the check was not consulted.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from marketplace.errors import Conflict
from marketplace.models import Batch, Task

from ..enums import ANSWERED, AssignmentStatus
from ..models import Assignment, TrainingResult, WorkerSkill

RETRY_NOT_AVAILABLE = "training_retry_not_available"


def _retry_after(result: TrainingResult) -> datetime:
    return result.finished_at + timedelta(hours=result.batch.training_retry_hours)


def _last_failure(*, worker_id: int, skill_id: int) -> TrainingResult | None:
    """The worker's latest failed result in any training batch granting ``skill_id``."""
    return (
        TrainingResult.objects.select_related("batch")
        .filter(worker_id=worker_id, batch__training_skill_id=skill_id, passed=False)
        .order_by("-finished_at", "-id")
        .first()
    )


def training_retry_check(*, worker_id: int, batch: Batch, now: datetime) -> None:
    """Raise 409 ``training_retry_not_available`` if the worker may not take this training batch
    now; a no-op for regular batches and for workers without a failure. Reads only; meant for the
    claim path, before any lease is written.

    ``detail``: ``retry_after`` (ISO time from which a fresh batch for the skill is open to them)
    and ``needs_fresh_batch`` (true when this very batch is the one they failed).
    """
    if not batch.is_training:
        return
    failed_here = (
        TrainingResult.objects.select_related("batch")
        .filter(worker_id=worker_id, batch=batch, passed=False)
        .first()
    )
    if failed_here is not None:
        raise Conflict(
            "You did not pass this training. Its tasks cannot be served to you again: "
            "retry with another training batch for the same skill after the retry delay.",
            code=RETRY_NOT_AVAILABLE,
            detail={"retry_after": _iso(_retry_after(failed_here)), "needs_fresh_batch": True},
        )
    if batch.training_skill_id is None:
        return
    failure = _last_failure(worker_id=worker_id, skill_id=batch.training_skill_id)
    if failure is not None and now < _retry_after(failure):
        raise Conflict(
            "You did not pass a training for this skill recently; you may retry after the delay.",
            code=RETRY_NOT_AVAILABLE,
            detail={"retry_after": _iso(_retry_after(failure)), "needs_fresh_batch": False},
        )


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def training_finish_if_done(*, worker_id: int, batch: Batch, now: datetime) -> TrainingResult | None:
    """Record the result (and grant the skill) once the worker has answered every training
    task. Caller holds the submit's transaction. Idempotent: one result per (worker, batch).

    A run finished less than the retry delay after a failure for the same skill (in another
    batch) records nothing and grants nothing; see the module docstring.
    """
    total = Task.objects.filter(batch=batch, gold_answer__isnull=False).count()
    scored = list(
        Assignment.objects.filter(
            worker_id=worker_id,
            batch=batch,
            gold_correct__isnull=False,
            status__in=[*ANSWERED, AssignmentStatus.REJECTED],
        ).values_list("gold_correct", flat=True)
    )
    if not total or len(scored) < total:
        return None
    if TrainingResult.objects.filter(worker_id=worker_id, batch=batch).exists():
        return None
    if batch.training_skill_id is not None:
        failure = _last_failure(worker_id=worker_id, skill_id=batch.training_skill_id)
        if failure is not None and now < _retry_after(failure):
            return None
    accuracy = sum(scored) / len(scored)
    passed = accuracy >= batch.training_pass_mark
    result = TrainingResult.objects.create(
        worker_id=worker_id, batch=batch, accuracy=accuracy, passed=passed, finished_at=now
    )
    if passed and batch.training_skill_id is not None:
        WorkerSkill.objects.update_or_create(
            worker_id=worker_id, skill_id=batch.training_skill_id, defaults={"value": round(accuracy * 100)}
        )
    return result
