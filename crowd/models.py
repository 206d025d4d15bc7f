"""The worker side: worker profiles and assignments (leases, then answers)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from .enums import (
    APPEAL_UNDECIDED,
    Actor,
    AppealDecider,
    AppealStatus,
    AssignmentStatus,
    RestrictionScope,
    RuleKind,
)


class Worker(models.Model):
    """The worker profile of a user."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="worker")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        # Admins know workers by e-mail (select ``user`` with the worker); requesters never see
        # this, only their pseudonym for the worker (``marketplace.selectors.worker_pseudonym``).
        return self.user.email


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
    # Quality control. ``gold_correct``/``gold_score`` are set at submit for answers to tasks with a
    # known answer and are never serialised to a worker.
    gold_correct = models.BooleanField(null=True, blank=True)
    gold_score = models.FloatField(null=True, blank=True, help_text="0 to 1; the Jaccard index for jaccard.")
    # DB defaults: the hand-written claim INSERT does not name the quality columns.
    feedback = models.TextField(
        blank=True,
        default="",
        db_default="",
        help_text="Training batches: the task's explanation after a wrong answer.",
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_reason = models.TextField(blank=True, default="", db_default="", help_text="Shown to the worker.")

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
            # The auto-accept sweep walks only answers still waiting for a verdict.
            # A worker's control answers by age: the lagged reliability behind batch filters.
            models.Index(
                fields=["worker", "submitted_at"],
                condition=Q(gold_correct__isnull=False),
                name="assignment_worker_scored",
            ),
            models.Index(
                fields=["submitted_at"],
                condition=Q(status=AssignmentStatus.SUBMITTED),
                name="assignment_awaiting_review",
            ),
        ]

    def __str__(self) -> str:
        return f"assignment {self.pk}"


class AssignmentEvent(models.Model):
    """One transition of an assignment. Insert-only: the history behind every verdict and payment."""

    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="events")
    from_status = models.CharField(max_length=10, choices=AssignmentStatus.choices)
    to_status = models.CharField(max_length=10, choices=AssignmentStatus.choices)
    actor = models.CharField(max_length=10, choices=Actor.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    rule = models.ForeignKey(
        "QualityRule", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.assignment_id}: {self.from_status} → {self.to_status}"

    def save(self, *args: object, **kwargs: object) -> None:
        if self.pk is not None:
            raise ValueError("Assignment events are insert-only.")
        super().save(*args, **kwargs)  # type: ignore[arg-type]


class Reliability(models.Model):
    """Gold counts of a worker on one project (``project`` set) or over all projects (NULL).

    The estimate is a Beta posterior over these counts; see ``crowd.quality.reliability``.
    Rows are bumped with one atomic ``UPDATE ... SET correct = correct + 1`` in the submit's
    transaction, so concurrent submits never lose a count.
    """

    worker = models.ForeignKey(Worker, on_delete=models.CASCADE, related_name="reliabilities", db_index=False)
    project = models.ForeignKey(
        "marketplace.Project", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    gold_correct = models.PositiveIntegerField(default=0)
    gold_total = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "reliabilities"
        constraints = [
            models.UniqueConstraint(
                fields=["worker", "project"], condition=Q(project__isnull=False), name="reliability_project"
            ),
            models.UniqueConstraint(
                fields=["worker"], condition=Q(project__isnull=True), name="reliability_global"
            ),
            models.CheckConstraint(
                condition=Q(gold_correct__lte=models.F("gold_total")), name="reliability_counts"
            ),
        ]

    def __str__(self) -> str:
        return f"reliability of worker {self.worker_id} on {self.project_id or 'all projects'}"


class WorkerConfusion(models.Model):
    """A worker's expected answer counts in one batch, from the batch's last Dawid-Skene re-fit.

    ``counts[t][a]``: how many of their answers were class ``a`` on tasks whose class is ``t``
    (soft counts from the fit's posteriors; gold tasks count with their known class), over
    ``Batch.consensus_labels``. A task that reaches its overlap between two re-fits is weighed with
    these (``marketplace.services.consensus``), so the instant consensus and the dynamic-overlap
    decision use what the model learned about each worker, not only their gold record. Rewritten by
    every re-fit, in the transaction that writes its results.
    """

    batch = models.ForeignKey("marketplace.Batch", on_delete=models.CASCADE, related_name="+", db_index=False)
    worker = models.ForeignKey(Worker, on_delete=models.CASCADE, related_name="+")
    counts = models.JSONField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["batch", "worker"], name="workerconfusion_batch_worker")
        ]

    def __str__(self) -> str:
        return f"confusion of worker {self.worker_id} in batch {self.batch_id}"


class WorkerSkill(models.Model):
    """A worker's value (0 to 100) of a requester's skill."""

    worker = models.ForeignKey(Worker, on_delete=models.CASCADE, related_name="skills", db_index=False)
    skill = models.ForeignKey("marketplace.Skill", on_delete=models.CASCADE, related_name="values")
    value = models.PositiveSmallIntegerField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["worker", "skill"], name="worker_skill_unique"),
            models.CheckConstraint(condition=Q(value__lte=100), name="worker_skill_range"),
        ]

    def __str__(self) -> str:
        return f"worker {self.worker_id}: skill {self.skill_id} = {self.value}"


class TrainingResult(models.Model):
    """A worker's finished run through a training batch: the accuracy and whether it passed."""

    worker = models.ForeignKey(Worker, on_delete=models.CASCADE, related_name="training_results")
    batch = models.ForeignKey("marketplace.Batch", on_delete=models.CASCADE, related_name="+")
    accuracy = models.FloatField()
    passed = models.BooleanField()
    finished_at = models.DateTimeField()

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"training of worker {self.worker_id} in batch {self.batch_id}: {self.accuracy:.0%}"


class QualityRule(models.Model):
    """A declarative QC rule of one batch: ``kind`` + ``params`` over a rolling window → ``action``.

    ``params`` and ``action`` are validated by ``crowd.quality.rules.RuleSerializer``; see
    ``RuleKind`` for each kind's parameters.
    """

    batch = models.ForeignKey("marketplace.Batch", on_delete=models.CASCADE, related_name="quality_rules")
    kind = models.CharField(max_length=20, choices=RuleKind.choices)
    params = models.JSONField(default=dict)
    action = models.JSONField(default=dict)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"rule {self.pk} ({self.kind})"


class Restriction(models.Model):
    """A worker barred from a batch, project, requester or the platform until ``ends_at``
    (NULL = permanent) unless lifted. Active = not lifted and not ended.

    Rules never restrict twice for one (worker, rule): the rule evaluation locks the worker row.
    """

    worker = models.ForeignKey(Worker, on_delete=models.CASCADE, related_name="restrictions", db_index=False)
    scope = models.CharField(max_length=10, choices=RestrictionScope.choices)
    batch = models.ForeignKey(
        "marketplace.Batch", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    project = models.ForeignKey(
        "marketplace.Project", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    requester = models.ForeignKey(
        "marketplace.Requester", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    reason = models.TextField()
    created_by = models.CharField(max_length=10, choices=Actor.choices)
    created_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    rule = models.ForeignKey(QualityRule, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField()
    ends_at = models.DateTimeField(null=True, blank=True, help_text="Empty: permanent.")
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["worker", "lifted_at"], name="restriction_worker")]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(scope=RestrictionScope.BATCH, batch__isnull=False)
                    | Q(scope=RestrictionScope.PROJECT, project__isnull=False)
                    | Q(scope=RestrictionScope.REQUESTER, requester__isnull=False)
                    | Q(scope=RestrictionScope.PLATFORM)
                ),
                name="restriction_scope_target",
            )
        ]

    def __str__(self) -> str:
        return f"restriction {self.pk} ({self.scope})"


class Appeal(models.Model):
    """A worker's appeal against the rejection of one of their answers (at most one per answer).

    Decided by the batch's requester until ``requester_deadline``, then escalated to admins; see
    ``AppealStatus`` for the transitions and ``crowd.quality.appeals`` for the services.
    """

    assignment = models.OneToOneField(Assignment, on_delete=models.CASCADE, related_name="appeal")
    worker = models.ForeignKey(Worker, on_delete=models.CASCADE, related_name="appeals", db_index=False)
    message = models.CharField(max_length=2000, help_text="The worker's case; the requester sees it.")
    status = models.CharField(max_length=10, choices=AppealStatus.choices, default=AppealStatus.OPEN)
    created_at = models.DateTimeField()
    requester_deadline = models.DateTimeField(help_text="After this, only admins decide.")
    escalated_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decided_by_kind = models.CharField(max_length=10, choices=AppealDecider.choices, blank=True, default="")
    note = models.TextField(blank=True, default="", help_text="The decision's reason; the worker sees it.")

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["worker", "id"], name="appeal_worker"),
            # The escalation sweep walks only appeals still waiting for their requester.
            models.Index(
                fields=["requester_deadline"],
                condition=Q(status=AppealStatus.OPEN),
                name="appeal_open_deadline",
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=~Q(message=""), name="appeal_message_required"),
            models.CheckConstraint(
                condition=(
                    Q(status__in=APPEAL_UNDECIDED, decided_at__isnull=True, decided_by_kind="")
                    | (
                        ~Q(status__in=APPEAL_UNDECIDED)
                        & Q(decided_at__isnull=False, decided_by_kind__in=AppealDecider.values)
                    )
                ),
                name="appeal_decision_complete",
            ),
        ]

    def __str__(self) -> str:
        return f"appeal {self.pk} ({self.status})"
