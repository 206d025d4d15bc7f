"""Batches: creation, edits, and the draft → open ⇄ paused → closed lifecycle."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from crowd.services.leases import leases_release_for_batch

from ..enums import BATCH_TRANSITIONS, BatchStatus
from ..errors import Conflict
from ..models import Batch, BatchSkillFilter, Project, Task
from . import budget, consensus

# Fields that set what a worker is paid or how many answers are bought: only a draft may change them.
DRAFT_ONLY_FIELDS = frozenset({"price_cents", "currency", "overlap", "min_overlap", "max_overlap"})


def _filters_write(batch: Batch, rows: list[dict[str, Any]]) -> None:
    """Replace the batch's skill filters (the serializer has checked the skills are the requester's)."""
    BatchSkillFilter.objects.filter(batch=batch).delete()
    BatchSkillFilter.objects.bulk_create(
        BatchSkillFilter(batch=batch, skill_id=r["skill"], op=r["op"], value=r.get("value")) for r in rows
    )


def batch_create(
    *, project: Project, filter_rows: list[dict[str, Any]] | None = None, **fields: Any
) -> Batch:
    with transaction.atomic():
        batch = Batch.objects.create(project=project, **fields)
        _filters_write(batch, filter_rows or [])
    return batch


def batch_update(*, batch: Batch, data: dict[str, Any]) -> Batch:
    """Edit a batch. Price, currency and overlap are fixed after publishing (409)."""
    with transaction.atomic():
        batch = Batch.objects.select_for_update().get(pk=batch.pk)
        if batch.status == BatchStatus.CLOSED:
            raise Conflict("A closed batch cannot be edited.", code="batch_closed")
        frozen = sorted(f for f in DRAFT_ONLY_FIELDS if f in data and data[f] != getattr(batch, f))
        if frozen and batch.status != BatchStatus.DRAFT:
            raise Conflict(
                "Price, currency and overlap can only change while the batch is a draft.",
                code="batch_not_draft",
                detail={f: ["Only editable in draft."] for f in frozen},
            )
        filter_rows = data.pop("filter_rows", None)
        if filter_rows is not None:
            _filters_write(batch, filter_rows)
        for field, value in data.items():
            setattr(batch, field, value)
        batch.save(update_fields=[*data.keys(), "updated_at"])
        if "overlap" in data:
            Task.objects.filter(batch=batch, is_gold=False).update(overlap=batch.overlap)
    return batch


def _transition(batch: Batch, target: BatchStatus) -> Batch:
    """Lock the batch row and move it to ``target``, or raise 409 naming the current state."""
    locked = Batch.objects.select_for_update().get(pk=batch.pk)
    if target not in BATCH_TRANSITIONS[locked.status]:
        raise Conflict(
            f"Cannot move a batch from {locked.status} to {target}.",
            code="invalid_transition",
            detail={"status": locked.status, "target": str(target)},
        )
    locked.status = target
    return locked


def batch_publish(*, batch: Batch) -> Batch:
    """draft|paused → open. A batch needs at least one regular (non-gold) task to publish."""
    with transaction.atomic():
        batch = _transition(batch, BatchStatus.OPEN)
        if not Task.objects.filter(batch=batch, is_gold=False).exists():
            raise Conflict("Upload at least one non-gold task before publishing.", code="no_tasks")
        budget.batch_reserve_required(batch=batch)
        batch.pause_reason = ""
        fields = ["status", "pause_reason", "updated_at"]
        if batch.published_at is None:
            batch.published_at = timezone.now()
            fields.append("published_at")
        batch.save(update_fields=fields)
    return batch


def batch_pause(*, batch: Batch) -> Batch:
    """open → paused: no new claims; leases already held may still be submitted."""
    with transaction.atomic():
        batch = _transition(batch, BatchStatus.PAUSED)
        batch.save(update_fields=["status", "updated_at"])
    return batch


def batch_close(*, batch: Batch) -> Batch:
    """→ closed for good: active leases are released and no answer is accepted afterwards."""
    with transaction.atomic():
        batch = _transition(batch, BatchStatus.CLOSED)
        batch.closed_at = timezone.now()
        batch.save(update_fields=["status", "closed_at", "updated_at"])
        leases_release_for_batch(batch_id=batch.pk, now=batch.closed_at)
        budget.batch_release_unspent(batch=batch)
        # The periodic re-fit only watches open and paused batches: fit the final answers once.
        batch_id = batch.pk
        transaction.on_commit(lambda: consensus.refit_later(batch_id=batch_id))
    return batch


def batch_progress(*, batch: Batch) -> dict[str, int]:
    """Counts for the requester's progress view, in two aggregate queries."""
    from django.db.models import Count, Q, Sum

    from crowd.enums import AssignmentStatus
    from crowd.models import Assignment

    regular = Q(is_gold=False)
    tasks = Task.objects.filter(batch=batch).aggregate(
        tasks=Count("id", filter=regular),
        gold_tasks=Count("id", filter=Q(is_gold=True)),
        tasks_complete=Count("id", filter=regular & Q(answers_count__gte=F("overlap"))),
        answers_wanted=Sum("overlap", filter=regular, default=0),
    )
    by_status = Assignment.objects.filter(batch=batch).aggregate(
        **{f"assignments_{s.value}": Count("id", filter=Q(status=s.value)) for s in AssignmentStatus},
        gold_answers=Count(
            "id",
            filter=Q(
                is_gold=True,
                status__in=[AssignmentStatus.SUBMITTED, AssignmentStatus.ACCEPTED, AssignmentStatus.REJECTED],
            ),
        ),
    )
    return {**tasks, **by_status}
