"""Giving leases' capacity back: expiry (lazy and swept), and release when a batch closes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from marketplace.models import Task

from ..enums import Actor, AssignmentStatus
from ..models import Assignment
from ..quality.events import events_add


def slots_return(task_ids: Iterable[int]) -> None:
    """Give one slot back per occurrence of a regular task id. Caller holds a transaction.

    Tasks are locked in id order first so two transactions returning slots never deadlock.
    """
    counts = Counter(task_ids)
    if not counts:
        return
    list(Task.objects.select_for_update().filter(id__in=counts).order_by("id").values_list("id"))
    by_amount: dict[int, list[int]] = {}
    for task_id, amount in counts.items():
        by_amount.setdefault(amount, []).append(task_id)
    for amount, ids in by_amount.items():
        Task.objects.filter(id__in=ids).update(slots_taken=F("slots_taken") - amount)


def leases_expire(*, batch_id: int | None = None, now: datetime | None = None, limit: int = 500) -> int:
    """Mark up to ``limit`` overdue active assignments expired and return their slots.

    Rows another transaction holds (a submit racing the expiry) are skipped, so the caller never
    waits and each lease is expired exactly once. Returns how many were expired.
    """
    now = now or timezone.now()
    # No savepoint: inside the claim transaction this must not cost two extra round trips.
    with transaction.atomic(savepoint=False):
        stale = Assignment.objects.filter(status=AssignmentStatus.ACTIVE, expires_at__lte=now)
        if batch_id is not None:
            stale = stale.filter(batch_id=batch_id)
        rows = list(
            stale.select_for_update(skip_locked=True)
            .order_by("expires_at")
            .values_list("id", "task_id", "is_gold")[:limit]
        )
        if not rows:
            return 0
        Assignment.objects.filter(id__in=[r[0] for r in rows]).update(
            status=AssignmentStatus.EXPIRED, ended_at=now
        )
        events_add(
            [r[0] for r in rows],
            from_status=AssignmentStatus.ACTIVE,
            to_status=AssignmentStatus.EXPIRED,
            actor=Actor.SYSTEM,
            now=now,
        )
        slots_return(task_id for _, task_id, is_gold in rows if not is_gold)
    return len(rows)


def leases_expire_all(*, now: datetime | None = None, chunk: int = 1000) -> int:
    """Sweep every overdue lease in chunks (the Celery beat task). Safe to run concurrently."""
    now = now or timezone.now()
    total = 0
    while True:
        done = leases_expire(now=now, limit=chunk)
        total += done
        if done < chunk:
            return total


def leases_release_for_batch(*, batch_id: int, now: datetime) -> int:
    """Release every active lease of a closing batch and return their slots.

    A claim that read the batch as open just before it closed may still commit one more lease; it
    cannot be submitted (the batch is closed) and expires through the sweep, returning its own
    slot, so counters stay exact without a lock on the batch row in the claim hot path.
    """
    return leases_release(batch_id=batch_id, now=now, reason="The batch was closed.")


def leases_release(
    *,
    batch_id: int,
    now: datetime,
    reason: str,
    worker_id: int | None = None,
    actor: Actor = Actor.SYSTEM,
    rule_id: int | None = None,
) -> int:
    """Release the active leases of a batch (of one worker, if given) and return their slots; a
    later submit of one of them is refused (409). Returns how many were released."""
    with transaction.atomic():
        leases = Assignment.objects.filter(batch_id=batch_id, status=AssignmentStatus.ACTIVE)
        if worker_id is not None:
            leases = leases.filter(worker_id=worker_id)
        rows = list(leases.order_by("id").select_for_update().values_list("id", "task_id", "is_gold"))
        if not rows:
            return 0
        Assignment.objects.filter(id__in=[r[0] for r in rows]).update(
            status=AssignmentStatus.RELEASED, ended_at=now
        )
        events_add(
            [r[0] for r in rows],
            from_status=AssignmentStatus.ACTIVE,
            to_status=AssignmentStatus.RELEASED,
            actor=actor,
            now=now,
            reason=reason,
            rule_id=rule_id,
        )
        slots_return(task_id for _, task_id, is_gold in rows if not is_gold)
    return len(rows)
