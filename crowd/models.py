"""The worker side: worker profiles and assignments (leases, then answers)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from .enums import AssignmentStatus


class Worker(models.Model):
    """The worker profile of a user."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="worker")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"worker {self.pk}"


class Assignment(models.Model):
    """One worker's lease on one task, and then their answer.

    ``batch`` and ``is_gold`` are copied from the task so per-batch sweeps and listings need no
    join; ``is_gold`` is never serialised to a worker.
    """

    # No single-column FK indexes: the unique (task, worker) constraint and the (batch, ...) and
    # (worker, ...) indexes below lead with these columns, and every index costs each claim/submit.
    task = models.ForeignKey(
        "marketplace.Task", on_delete=models.CASCADE, related_name="assignments", db_index=False
    )
    batch = models.ForeignKey(
        "marketplace.Batch", on_delete=models.CASCADE, related_name="assignments", db_index=False
    )
    worker = models.ForeignKey(Worker, on_delete=models.CASCADE, related_name="assignments", db_index=False)
    is_gold = models.BooleanField(default=False)
    status = models.CharField(
        max_length=10, choices=AssignmentStatus.choices, default=AssignmentStatus.ACTIVE
    )
    answer = models.JSONField(null=True, blank=True)
    claimed_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    submitted_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True, help_text="When the lease ended unanswered.")
    submit_key = models.CharField(
        max_length=200, blank=True, default="", help_text="Idempotency-Key of the accepted submit."
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            # Also the index that answers "has this worker already had this task".
            models.UniqueConstraint(fields=["task", "worker"], name="assignment_unique_task_worker"),
        ]
        indexes = [
            models.Index(fields=["batch", "status", "id"], name="assignment_batch_status"),
            models.Index(fields=["worker", "status", "id"], name="assignment_worker_status"),
            # Lazy expiry asks "does this batch have an overdue lease" on every claim.
            models.Index(
                fields=["batch", "expires_at"],
                condition=Q(status=AssignmentStatus.ACTIVE),
                name="assignment_active_expiry",
            ),
        ]

    def __str__(self) -> str:
        return f"assignment {self.pk}"
