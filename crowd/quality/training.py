"""Training batches: every task carries a known answer; finishing one grants a skill value.

A worker finishes when they have answered every task of the batch that carries an answer. The
skill value is the accuracy in percent, granted if it reaches the pass mark. A worker who failed
is granted nothing until ``training_retry_hours`` have passed since that result.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from marketplace.models import Batch, Task

from ..enums import ANSWERED, AssignmentStatus
from ..models import Assignment, TrainingResult, WorkerSkill


def training_finish_if_done(*, worker_id: int, batch: Batch, now: datetime) -> TrainingResult | None:
    """Record the result (and grant the skill) once the worker has answered every training
    task. Caller holds the submit's transaction; idempotent per finished run."""
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
    last = TrainingResult.objects.filter(worker_id=worker_id, batch=batch).first()
    if (
        last is not None
        and not last.passed
        and now < last.finished_at + timedelta(hours=batch.training_retry_hours)
    ):
        return None
    if last is not None and last.passed:
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
