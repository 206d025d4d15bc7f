"""Shared expectations of the batches API tests: the batch body and detail as the API renders them."""

from __future__ import annotations

from marketplace.models import Batch
from tests.factories import iso

BATCH_NOT_FOUND = {"code": "not_found", "message": "Batch not found.", "detail": {}}
NO_PROGRESS = {
    "tasks": 0,
    "gold_tasks": 0,
    "tasks_complete": 0,
    "answers_wanted": 0,
    "assignments_active": 0,
    "assignments_submitted": 0,
    "assignments_expired": 0,
    "assignments_skipped": 0,
    "assignments_released": 0,
    "assignments_accepted": 0,
    "assignments_rejected": 0,
    "gold_answers": 0,
}


def body(batch: Batch) -> dict:
    batch.refresh_from_db()
    return {
        "id": batch.pk,
        "project": batch.project_id,
        "name": batch.name,
        "status": batch.status,
        "price_cents": batch.price_cents,
        "currency": batch.currency,
        "overlap": batch.overlap,
        "lease_seconds": batch.lease_seconds,
        "gold_rate": batch.gold_rate,
        "max_claims_per_request": batch.max_claims_per_request,
        "priority": batch.priority,
        # Quality control (issue 3).
        "review_mode": batch.review_mode,
        "auto_accept_after_hours": batch.auto_accept_after_hours,
        "min_reliability": batch.min_reliability,
        "filters": [{"skill": f.skill_id, "op": f.op, "value": f.value} for f in batch.skill_filters.all()],
        "is_training": batch.is_training,
        "training_skill": batch.training_skill_id,
        "training_pass_mark": batch.training_pass_mark,
        "training_retry_hours": batch.training_retry_hours,
        # Consensus and dynamic overlap (issue 4).
        "aggregation_method": batch.aggregation_method,
        "min_overlap": batch.min_overlap,
        "max_overlap": batch.max_overlap,
        "target_confidence": batch.target_confidence,
        "created_at": iso(batch.created_at),
        "updated_at": iso(batch.updated_at),
        "published_at": iso(batch.published_at),
        "closed_at": iso(batch.closed_at),
    }


def detail(batch: Batch, **progress: int) -> dict:
    return {**body(batch), "progress": {**NO_PROGRESS, **progress}}
