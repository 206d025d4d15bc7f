"""Claiming: the hot path. One short transaction hands a worker up to ``count`` leases."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, Max, Min, OuterRef
from django.utils import timezone

from marketplace.enums import BatchStatus
from marketplace.errors import Conflict
from marketplace.models import Batch, Task

from ..enums import AssignmentStatus
from ..models import Assignment, Worker
from .leases import leases_expire

_rng = random.SystemRandom()


def _unseen(worker: Worker) -> Exists:
    """Anti-join probe answered by the (task, worker) unique index, never by a scan."""
    return Exists(Assignment.objects.filter(task=OuterRef("pk"), worker=worker))


def _pick_gold(*, batch: Batch, worker: Worker, wanted: int) -> list[tuple[int, Any]]:
    """Up to ``wanted`` gold tasks this worker has not seen, from a random point of the gold range.

    Gold tasks have no capacity to guard, so they are read without locks; the unique constraint on
    insert stops a second session of the same worker from getting the same one.
    """
    gold = Task.objects.filter(batch=batch, is_gold=True)
    bounds = gold.aggregate(lo=Min("id"), hi=Max("id"))
    if bounds["lo"] is None:
        return []
    pivot = _rng.randint(bounds["lo"], bounds["hi"])
    unseen = gold.filter(~_unseen(worker)).order_by("id")
    picked = list(unseen.filter(id__gte=pivot).values_list("id", "input")[:wanted])
    if len(picked) < wanted:
        picked += list(unseen.filter(id__lt=pivot).values_list("id", "input")[: wanted - len(picked)])
    return picked


def _lock_regular(*, batch: Batch, worker: Worker, wanted: int) -> list[tuple[int, Any]]:
    """Lock up to ``wanted`` regular tasks with a free slot that this worker has not had.

    ``FOR UPDATE SKIP LOCKED`` lets concurrent claimers take different rows without waiting; the
    partial index ``task_claimable`` walks only tasks with free slots, in id order.
    """
    return list(
        Task.objects.filter(batch=batch, is_gold=False, slots_taken__lt=F("overlap"))
        .filter(~_unseen(worker))
        .order_by("id")
        .select_for_update(skip_locked=True, of=("self",))
        .values_list("id", "input")[:wanted]
    )


def _has_regular_work(*, batch: Batch, worker: Worker) -> bool:
    return (
        Task.objects.filter(batch=batch, is_gold=False, slots_taken__lt=F("overlap"))
        .filter(~_unseen(worker))
        .exists()
    )


def _insert(
    rows: list[tuple[int, bool]], *, batch: Batch, worker: Worker, now: Any, expires: Any
) -> dict[int, int]:
    """Insert assignments, skipping any (task, worker) pair that already exists.

    Returns ``{task_id: assignment_id}`` for the rows actually inserted. ``ON CONFLICT DO NOTHING``
    covers the rare race where a worker's second session committed the same task a moment earlier.
    """
    table = Assignment._meta.db_table
    ops = connection.ops
    placeholders = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s)"] * len(rows))
    params: list[Any] = []
    claimed = ops.adapt_datetimefield_value(now)
    expiry = ops.adapt_datetimefield_value(expires)
    for task_id, is_gold in rows:
        params += [task_id, batch.pk, worker.pk, is_gold, AssignmentStatus.ACTIVE.value, claimed, expiry, ""]
    sql = (
        f'INSERT INTO "{table}" (task_id, batch_id, worker_id, is_gold, status, claimed_at, '
        f"expires_at, submit_key) VALUES {placeholders} "
        "ON CONFLICT (task_id, worker_id) DO NOTHING RETURNING id, task_id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {task_id: pk for pk, task_id in cursor.fetchall()}


def assignment_claim(*, worker: Worker, batch: Batch, count: int) -> list[dict[str, Any]]:
    """Lease up to ``count`` tasks of an open batch to ``worker``; returns the leases, shuffled.

    Gold tasks are mixed in at ``batch.gold_rate`` and nothing in the result (order, fields) tells
    them apart. Guarantees, enforced by the database: a worker never holds the same task twice
    (unique constraint); a regular task never has more than ``overlap`` active + submitted
    assignments (row lock + counter under a check constraint). An exhausted batch returns ``[]``.
    A worker may hold at most ``max_claims_per_request`` active leases in one batch (409 beyond).
    """
    if batch.status != BatchStatus.OPEN:
        raise Conflict(f"The batch is {batch.status}, not open.", code="batch_not_open")
    now = timezone.now()
    expires = now + timedelta(seconds=batch.lease_seconds)
    with transaction.atomic():
        leases_expire(batch_id=batch.pk, now=now, limit=settings.LEASE_LAZY_EXPIRE_LIMIT)
        active = Assignment.objects.filter(
            worker=worker, batch=batch, status=AssignmentStatus.ACTIVE, expires_at__gt=now
        ).count()
        wanted = min(count, batch.max_claims_per_request - active)
        if wanted <= 0:
            raise Conflict(
                "Submit, skip or release your current leases in this batch before claiming more.",
                code="too_many_active_leases",
                detail={"active": active, "max_claims_per_request": batch.max_claims_per_request},
            )
        gold_wanted = sum(_rng.random() < batch.gold_rate for _ in range(wanted))
        gold = _pick_gold(batch=batch, worker=worker, wanted=gold_wanted) if gold_wanted else []
        regular_wanted = wanted - len(gold)
        regular = _lock_regular(batch=batch, worker=worker, wanted=regular_wanted) if regular_wanted else []
        # Serving gold alone once regular work has run out would mark it as gold.
        if not regular and (regular_wanted or not _has_regular_work(batch=batch, worker=worker)):
            return []
        rows = [(tid, True) for tid, _ in gold] + [(tid, False) for tid, _ in regular]
        _rng.shuffle(rows)
        inserted = _insert(rows, batch=batch, worker=worker, now=now, expires=expires)
        taken = [tid for tid, _ in regular if tid in inserted]
        if taken:
            Task.objects.filter(id__in=taken).update(slots_taken=F("slots_taken") + 1)
    inputs = dict(gold) | dict(regular)
    return [
        {"id": inserted[tid], "batch": batch.pk, "input": inputs[tid], "expires_at": expires}
        for tid, _ in rows
        if tid in inserted
    ]
