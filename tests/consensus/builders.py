"""Helpers for the consensus tests: workers answering through the real claim and submit services."""

from __future__ import annotations

from typing import Any

from crowd.models import Assignment, Worker
from crowd.services.claims import assignment_claim
from crowd.services.submissions import assignment_submit
from marketplace.models import Batch
from tests.factories import WorkerFactory


def answer_all(batch: Batch, answers: dict[int, Any] | Any, *, worker: Worker | None = None) -> Worker:
    """A (new) worker claims every task they can get and submits ``answers[task_id]`` (or one
    answer for all). Returns the worker."""
    worker = worker or WorkerFactory()
    leases = assignment_claim(worker=worker, batch=batch, count=batch.max_claims_per_request)
    tasks = dict(
        Assignment.objects.filter(id__in=[lease.id for lease in leases]).values_list("id", "task_id")
    )
    for lease in sorted(leases, key=lambda lease: tasks[lease.id]):
        given = answers[tasks[lease.id]] if isinstance(answers, dict) else answers
        assignment_submit(worker=worker, assignment_id=lease.id, answer=given)
    return worker
