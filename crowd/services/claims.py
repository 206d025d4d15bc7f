"""Claiming: the hot path. One short transaction hands a worker up to ``count`` leases."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, Max, Min, OuterRef
from django.utils import timezone

from marketplace.enums import BatchStatus
from marketplace.errors import Conflict
from marketplace.models import Batch, Task

from .. import selectors
from ..models import Assignment, Worker
from . import claim_sql
from .leases import leases_expire

_rng = random.SystemRandom()


@dataclass(frozen=True)
class Lease:
    """A claimed assignment as the worker sees it. ``input_json`` is the task input, serialised."""

    id: int
    batch_id: int
    input_json: str
    expires_at: datetime


def assignment_claim(
    *,
    worker: Worker,
    batch: Batch,
    count: int,
    active_leases: int | None = None,
    has_overdue: bool = True,
) -> list[Lease]:
    """Lease up to ``count`` tasks of an open batch to ``worker``; returns the leases, shuffled.

    Gold tasks are mixed in at ``batch.gold_rate`` and nothing in the result (order, fields, ids)
    tells them apart. Guarantees, enforced by the database: a worker never holds the same task
    twice (unique constraint); a regular task never has more than ``overlap`` active + submitted
    assignments (row lock + counter under a check constraint). An exhausted batch returns ``[]``.
    A worker may hold at most ``max_claims_per_request`` active leases in one batch (409 beyond),
    also when several sessions of theirs claim at once: the claim counts them under a lock.
    ``active_leases`` and ``has_overdue`` may be passed when the caller already read them (the
    API's selector); overdue leases of the batch are expired first so their slots can be claimed.
    """
    if batch.status != BatchStatus.OPEN:
        raise Conflict(f"The batch is {batch.status}, not open.", code="batch_not_open")
    now = timezone.now()
    if active_leases is None:
        active_leases = selectors.active_lease_count(worker=worker, batch_id=batch.pk, now=now)
    wanted = min(count, batch.max_claims_per_request - active_leases)
    if wanted <= 0:
        raise _too_many(batch, active_leases)
    gold_wanted = sum(_rng.random() < batch.gold_rate for _ in range(wanted)) if batch.gold_rate else 0
    expires = now + timedelta(seconds=batch.lease_seconds)
    if connection.vendor == "postgresql":
        if has_overdue:
            claim_sql.expire_batch_leases(batch_id=batch.pk, now=now, limit=settings.LEASE_LAZY_EXPIRE_LIMIT)
        allowance, rows = claim_sql.claim(
            batch_id=batch.pk,
            worker_id=worker.pk,
            n_regular=wanted - gold_wanted,
            n_gold=gold_wanted,
            cap=batch.max_claims_per_request,
            now=now,
            expires=expires,
        )
        if allowance <= 0:  # another session of this worker took the rest of the cap meanwhile
            raise _too_many(batch, batch.max_claims_per_request - allowance)
        return [Lease(pk, batch.pk, text, expires) for pk, text in rows]
    return _claim_portable(
        worker=worker, batch=batch, wanted=wanted, gold_wanted=gold_wanted, now=now, expires=expires
    )


def _too_many(batch: Batch, active: int) -> Conflict:
    return Conflict(
        "Submit, skip or release your current leases in this batch before claiming more.",
        code="too_many_active_leases",
        detail={"active": active, "max_claims_per_request": batch.max_claims_per_request},
    )


# --- The portable fallback (SQLite): the same rules through the ORM --------------------------------
# SQLite takes its write lock at BEGIN (settings: transaction_mode IMMEDIATE), so claims serialise.


def _unseen(worker: Worker) -> Exists:
    return Exists(Assignment.objects.filter(task=OuterRef("pk"), worker=worker))


def _claimable(batch: Batch, worker: Worker) -> Any:
    return Task.objects.filter(batch=batch, is_gold=False, slots_taken__lt=F("overlap")).filter(
        ~_unseen(worker)
    )


def _pick_gold(*, batch: Batch, worker: Worker, wanted: int) -> list[tuple[int, Any]]:
    """Up to ``wanted`` unseen gold tasks, starting from a random point of the gold id range."""
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


def _claim_portable(
    *, worker: Worker, batch: Batch, wanted: int, gold_wanted: int, now: datetime, expires: datetime
) -> list[Lease]:
    with transaction.atomic():
        leases_expire(batch_id=batch.pk, now=now, limit=settings.LEASE_LAZY_EXPIRE_LIMIT)
        # Counted again inside the write transaction (SQLite's lock, taken at BEGIN, serialises
        # claims), so two sessions of one worker cannot both pass the cap.
        active = selectors.active_lease_count(worker=worker, batch_id=batch.pk, now=now)
        if active >= batch.max_claims_per_request:
            raise _too_many(batch, active)
        wanted = min(wanted, batch.max_claims_per_request - active)
        gold_wanted = min(gold_wanted, wanted)
        # Gold first: a gold share the worker cannot fill (all gold seen) becomes regular work.
        gold = _pick_gold(batch=batch, worker=worker, wanted=gold_wanted) if gold_wanted else []
        regular_wanted = wanted - len(gold)
        regular = (
            list(
                _claimable(batch, worker)
                .order_by("id")
                .select_for_update(skip_locked=True, of=("self",))
                .values_list("id", "input")[:regular_wanted]
            )
            if regular_wanted
            else []
        )
        if not regular and (regular_wanted or not _claimable(batch, worker).exists()):
            return []
        chosen = [(tid, inp, False) for tid, inp in regular] + [(tid, inp, True) for tid, inp in gold]
        _rng.shuffle(chosen)
        existing = set(
            Assignment.objects.filter(worker=worker, task_id__in=[c[0] for c in chosen]).values_list(
                "task_id", flat=True
            )
        )
        chosen = [c for c in chosen if c[0] not in existing]
        created = Assignment.objects.bulk_create(
            [
                Assignment(
                    task_id=tid,
                    batch=batch,
                    worker=worker,
                    is_gold=is_gold,
                    claimed_at=now,
                    expires_at=expires,
                )
                for tid, _, is_gold in chosen
            ]
        )
        taken = [tid for tid, _, is_gold in chosen if not is_gold]
        if taken:
            Task.objects.filter(id__in=taken).update(slots_taken=F("slots_taken") + 1)
    return [
        Lease(a.pk, batch.pk, json.dumps(inp), expires)
        for a, (_, inp, _) in zip(created, chosen, strict=True)
    ]
