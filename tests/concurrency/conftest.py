"""Helpers for racing real threads against PostgreSQL.

Every helper here runs in tests marked ``django_db(transaction=True)``: each thread opens its own
connection, so nothing may hide inside the test's outer transaction.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Sequence

from django.db import connection
from django.db.models import Count, F, Q

from crowd.enums import AssignmentStatus
from crowd.models import Assignment, Worker
from marketplace.models import Batch, Task
from marketplace.services import budget
from marketplace.services.batches import batch_publish
from tests.factories import OPEN_BATCH_CUSHION_CENTS, BatchFactory, fund, make_tasks

# Issue 3: an accepted answer keeps its slot and counts as an answer; a rejected one gives both back.
LIVE = (AssignmentStatus.ACTIVE, AssignmentStatus.SUBMITTED, AssignmentStatus.ACCEPTED)
ANSWERED = (AssignmentStatus.SUBMITTED, AssignmentStatus.ACCEPTED)


def run_threads(targets: Sequence[Callable[[], object]], *, timeout: float = 60.0) -> list[str]:
    """Run every target in its own thread, all released at once; return the failures' tracebacks.

    Each thread closes its database connection when it ends, whatever happened. A thread still
    running after ``timeout`` seconds (a deadlock, a lost wake-up) is reported as a failure.
    """
    start = threading.Barrier(len(targets), timeout=timeout)
    failures: list[str] = []
    lock = threading.Lock()

    def body(target: Callable[[], object]) -> None:
        try:
            start.wait()
            target()
        except BaseException:
            with lock:
                failures.append(traceback.format_exc())
        finally:
            connection.close()

    threads = [threading.Thread(target=body, args=(t,), daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [t.name for t in threads if t.is_alive()]
    if stuck:
        failures.append(f"still running after {timeout} s: {stuck}")
    return failures


def open_batch(*, tasks: int, gold: int = 0, **fields: object) -> Batch:
    """A published batch with ``tasks`` regular and ``gold`` gold tasks."""
    batch = BatchFactory(**fields)
    make_tasks(batch, tasks, gold=gold)
    fund(batch.project.requester, budget.batch_required_cents(batch) + OPEN_BATCH_CUSHION_CENTS)
    return batch_publish(batch=batch)


def claimable_for(*, worker: Worker, batch: Batch) -> bool:
    """Whether a regular task of the batch still has a free slot this worker has never held."""
    return (
        Task.objects.filter(batch=batch, is_gold=False, slots_taken__lt=F("overlap"))
        .exclude(assignments__worker=worker)
        .exists()
    )


def counter_mismatches(batch: Batch) -> list[tuple[object, ...]]:
    """Tasks whose counters disagree with their assignment rows: ``[]`` when all are exact.

    A regular task's ``slots_taken`` must equal its active + submitted + accepted assignments and
    its ``answers_count`` its submitted + accepted ones; a gold task keeps both at zero.
    """
    tasks = Task.objects.filter(batch=batch).annotate(
        live=Count("assignments", filter=Q(assignments__status__in=LIVE)),
        answered=Count("assignments", filter=Q(assignments__status__in=ANSWERED)),
    )
    wrong = []
    for task in tasks:
        expected = (0, 0) if task.is_gold else (task.live, task.answered)
        if (task.slots_taken, task.answers_count) != expected:
            wrong.append((task.pk, task.is_gold, task.slots_taken, task.answers_count, *expected))
    return wrong


def duplicate_pairs(batch: Batch) -> list[dict[str, object]]:
    """(task, worker) pairs held more than once: ``[]`` unless the unique constraint is gone."""
    return list(
        Assignment.objects.filter(batch=batch)
        .values("task_id", "worker_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
    )
