"""Accounts and the requester side: users, API tokens, projects, batches and tasks."""

from __future__ import annotations

import hashlib
import secrets

from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.db import models
from django.db.models import F, Q

from .enums import (
    AggregationMethod,
    AnswerComparison,
    BatchStatus,
    ReviewMode,
    SkillOp,
    SnapshotStatus,
    TaskStatus,
)


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra: object) -> User:
        if not email:
            raise ValueError("An e-mail address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra: object) -> User:
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra: object) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self._create_user(email, password, **extra)


class User(AbstractUser):
    """Logs in by e-mail; holds a requester profile, a worker profile, or both. Staff are admins."""

    username = None  # type: ignore[assignment]
    email = models.EmailField(unique=True)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    objects = UserManager()  # type: ignore[misc]

    def __str__(self) -> str:
        return self.email


class Requester(models.Model):
    """The requester profile: owns projects and pays for their batches."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="requester")
    display_name = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.display_name or self.user.email


class ApiToken(models.Model):
    """A revocable API key for scripts. Only its SHA-256 is stored; the key is shown once."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=8)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    @staticmethod
    def generate_key() -> str:
        return secrets.token_urlsafe(32)

    @staticmethod
    def hash_key(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class Project(models.Model):
    """Instructions plus the JSON Schemas every task input and every answer must satisfy."""

    requester = models.ForeignKey(Requester, on_delete=models.CASCADE, related_name="projects")
    name = models.CharField(max_length=200)
    instructions = models.TextField(blank=True)
    input_schema = models.JSONField(default=dict)
    answer_schema = models.JSONField(default=dict)
    answer_comparison = models.JSONField(
        default=dict,
        blank=True,
        help_text='How answers are scored against gold: {"kind": "exact"} (default), '
        '{"kind": "numeric", "tolerance": 0.5}, {"kind": "set"}, {"kind": "jaccard", "threshold": 0.8}.',
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.name

    @property
    def comparison_kind(self) -> str:
        return (self.answer_comparison or {}).get("kind", AnswerComparison.EXACT)


class Skill(models.Model):
    """A requester-defined skill; workers hold values 0 to 100 (``crowd.WorkerSkill``)."""

    requester = models.ForeignKey(Requester, on_delete=models.CASCADE, related_name="skills")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["requester", "name"], name="skill_unique_name")]

    def __str__(self) -> str:
        return self.name


class Batch(models.Model):
    """A pool of tasks of one project with its price, overlap, lease time and gold rate."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="batches")
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=BatchStatus.choices, default=BatchStatus.DRAFT)
    price_cents = models.PositiveIntegerField(help_text="Reward per answer, in minor units.")
    currency = models.CharField(max_length=3, default="USD")
    overlap = models.PositiveSmallIntegerField(default=3, help_text="Answers wanted per task.")
    lease_seconds = models.PositiveIntegerField(default=600)
    gold_rate = models.FloatField(default=0.0, help_text="Share of claims served from gold tasks.")
    max_claims_per_request = models.PositiveSmallIntegerField(default=10)
    priority = models.IntegerField(default=0, help_text="Higher is shown to workers first.")
    review_mode = models.CharField(max_length=10, choices=ReviewMode.choices, default=ReviewMode.MANUAL)
    auto_accept_after_hours = models.PositiveIntegerField(
        default=72, help_text="Manual review: submitted answers are accepted after this many hours."
    )
    min_reliability = models.FloatField(
        null=True, blank=True, help_text="Filter: the worker's reliability on the project (posterior mean)."
    )
    is_training = models.BooleanField(
        default=False, help_text="Every task carries a known answer; finishing grants training_skill."
    )
    training_skill = models.ForeignKey(
        Skill, on_delete=models.PROTECT, null=True, blank=True, related_name="training_batches"
    )
    training_pass_mark = models.FloatField(default=0.8, help_text="Accuracy needed to be granted the skill.")
    training_retry_hours = models.PositiveIntegerField(
        default=24, help_text="A worker who failed may be granted the skill again after this delay."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    published_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    # Money (see marketplace.services.budget): moved into the requester's reserve for this batch,
    # and paid out of it for accepted answers. Changed only under the batch's row lock.
    reserved_cents = models.PositiveBigIntegerField(default=0, editable=False)
    spent_cents = models.PositiveBigIntegerField(default=0, editable=False)
    pause_reason = models.CharField(
        max_length=40, blank=True, default="", help_text="Why the system paused it, e.g. not_enough_balance."
    )
    # Consensus (issue 4, see marketplace.services.consensus). Dynamic overlap is on when
    # ``max_overlap`` is set: after ``min_overlap`` answers (default: ``overlap``) a task whose
    # confidence is below ``target_confidence`` gets one more slot, up to ``max_overlap``; one that
    # reaches the target stops taking answers.
    aggregation_method = models.CharField(
        max_length=12, choices=AggregationMethod.choices, default=AggregationMethod.DAWID_SKENE
    )
    min_overlap = models.PositiveSmallIntegerField(null=True, blank=True)
    max_overlap = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Set to turn dynamic overlap on; the reserve covers it."
    )
    target_confidence = models.FloatField(null=True, blank=True)
    # The last full re-fit: its version (0 = never), when its input was read, a fingerprint of that
    # input (an unchanged input is not re-fitted), the class labels it saw (canonical JSON) and,
    # for Dawid-Skene, the expected number of tasks of each of those classes (the per-worker counts
    # are ``crowd.WorkerConfusion``).
    consensus_version = models.PositiveIntegerField(default=0, editable=False)
    consensus_read_at = models.DateTimeField(null=True, blank=True, editable=False)
    consensus_fingerprint = models.CharField(max_length=64, blank=True, default="", editable=False)
    consensus_labels = models.JSONField(default=list, blank=True, editable=False)
    consensus_class_counts = models.JSONField(default=list, blank=True, editable=False)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "batches"
        indexes = [models.Index(fields=["status", "-priority"], name="batch_status_priority")]
        constraints = [
            models.CheckConstraint(condition=Q(overlap__gte=1), name="batch_overlap_positive"),
            models.CheckConstraint(
                condition=Q(spent_cents__lte=F("reserved_cents")), name="batch_spent_within_reserved"
            ),
            models.CheckConstraint(
                condition=Q(gold_rate__gte=0) & Q(gold_rate__lte=1), name="batch_gold_rate_range"
            ),
            models.CheckConstraint(condition=Q(lease_seconds__gte=10), name="batch_lease_min"),
            models.CheckConstraint(
                condition=Q(max_claims_per_request__gte=1), name="batch_max_claims_positive"
            ),
            models.CheckConstraint(
                condition=Q(min_reliability__isnull=True)
                | (Q(min_reliability__gte=0) & Q(min_reliability__lte=1)),
                name="batch_min_reliability_range",
            ),
            models.CheckConstraint(
                condition=Q(training_pass_mark__gte=0) & Q(training_pass_mark__lte=1),
                name="batch_pass_mark_range",
            ),
            models.CheckConstraint(
                condition=Q(
                    max_overlap__isnull=True, min_overlap__isnull=True, target_confidence__isnull=True
                )
                | (
                    Q(max_overlap__isnull=False, target_confidence__isnull=False)
                    & Q(overlap__lte=F("max_overlap"), max_overlap__lte=100)
                    & (Q(min_overlap__isnull=True) | Q(min_overlap__gte=1, min_overlap__lte=F("overlap")))
                    & Q(target_confidence__gte=0.5, target_confidence__lte=1)
                ),
                name="batch_dynamic_overlap",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_dynamic_overlap(self) -> bool:
        return self.max_overlap is not None

    @property
    def effective_min_overlap(self) -> int:
        return self.min_overlap or self.overlap


class BatchSkillFilter(models.Model):
    """A batch admits only workers whose ``skill`` satisfies ``op`` (``value``); all must hold."""

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="skill_filters")
    skill = models.ForeignKey(Skill, on_delete=models.PROTECT, related_name="+")
    op = models.CharField(max_length=10, choices=SkillOp.choices)
    value = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(op__in=[SkillOp.EXISTS, SkillOp.NOT_EXISTS], value__isnull=True)
                | (~Q(op__in=[SkillOp.EXISTS, SkillOp.NOT_EXISTS]) & Q(value__lte=100)),
                name="skill_filter_value",
            )
        ]

    def __str__(self) -> str:
        return f"skill {self.skill_id} {self.op} {self.value}"


class Task(models.Model):
    """One input to label. With ``gold_answer`` set it is a hidden control task.

    ``slots_taken`` counts active + submitted assignments of a regular task and never exceeds
    ``overlap`` (a CheckConstraint guards it); ``answers_count`` counts submitted ones. Gold tasks
    keep both at zero: any worker may see a gold task once, and gold never counts toward results.
    ``overlap`` lives on the task so dynamic overlap can grow one task's target.
    """

    # Indexed by ``task_batch_id`` below, which also gives the batch's id range in two probes.
    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="tasks", db_index=False)
    input = models.JSONField()
    gold_answer = models.JSONField(null=True, blank=True)
    gold_explanation = models.TextField(
        blank=True, default="", help_text="Training batches show it to a worker after a wrong answer."
    )
    is_gold = models.BooleanField(default=False)
    # NULL, not "", means "no external id": the unique constraint below only covers real ids.
    external_id = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    status = models.CharField(max_length=10, choices=TaskStatus.choices, default=TaskStatus.OPEN)
    overlap = models.PositiveSmallIntegerField()
    slots_taken = models.IntegerField(default=0)
    answers_count = models.IntegerField(default=0)
    # Set by the submit that gives the task its answers (its overlap, or the dynamic minimum and
    # every answer after it); cleared by ``consensus.consensus_drain`` once its consensus is computed.
    consensus_due = models.BooleanField(default=False, db_default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(slots_taken__gte=0) & Q(slots_taken__lte=F("overlap")),
                name="task_slots_within_overlap",
            ),
            models.CheckConstraint(
                condition=Q(answers_count__gte=0) & Q(answers_count__lte=F("slots_taken")),
                name="task_answers_within_slots",
            ),
            models.UniqueConstraint(
                fields=["batch", "external_id"],
                condition=Q(external_id__isnull=False),
                name="task_unique_external_id",
            ),
        ]
        indexes = [
            models.Index(fields=["batch", "id"], name="task_batch_id"),
            # The claim hot path walks only regular tasks that still have a free slot, in id order.
            models.Index(
                fields=["batch", "id"],
                condition=Q(is_gold=False, slots_taken__lt=F("overlap")),
                name="task_claimable",
            ),
            models.Index(fields=["batch", "id"], condition=Q(is_gold=True), name="task_gold"),
            # "Is any regular task of the batch still open?" when a task completes (consensus).
            models.Index(
                fields=["batch"], condition=Q(is_gold=False, status=TaskStatus.OPEN), name="task_open_regular"
            ),
            # The tasks whose consensus a drain still has to compute (few at any moment).
            models.Index(fields=["batch", "id"], condition=Q(consensus_due=True), name="task_consensus_due"),
        ]

    def __str__(self) -> str:
        return f"task {self.pk}"


class TaskConsensus(models.Model):
    """The current consensus of one regular task: a separate row, not fields on ``Task``, so the
    claim/submit hot path never rewrites it and a re-fit can upsert a whole batch at once.

    ``model_version`` is the batch re-fit (``Batch.consensus_version``) that wrote the row; 0 means
    it was computed instantly when the task reached its overlap, from current worker reliability.
    ``answer`` is the consensus answer as the workers gave it (JSON); ``confidence`` its posterior
    (Dawid-Skene) or weighted vote share (majority, weighted).
    """

    task = models.OneToOneField(Task, on_delete=models.CASCADE, primary_key=True, related_name="consensus")
    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="+", db_index=False)
    answer = models.JSONField(null=True)
    confidence = models.FloatField()
    answers_count = models.PositiveIntegerField()
    method = models.CharField(max_length=12, choices=AggregationMethod.choices)
    model_version = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "task consensuses"
        indexes = [models.Index(fields=["batch", "task"], name="consensus_batch_task")]

    def __str__(self) -> str:
        return f"consensus of task {self.task_id}"


class BatchSnapshot(models.Model):
    """Frozen results of a batch: a JSON Lines file under ``MEDIA_ROOT/snapshots/`` written once
    (then made read-only) with its SHA-256.

    Requested by the API and written by a Celery task, since a large batch takes minutes: the row is
    inserted ``pending`` and changes exactly once, by a conditional update, to ``ready`` (file,
    checksum and counts filled in) or ``failed`` (``error``). After that it never changes, and
    ``save`` refuses to rewrite it.
    """

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="snapshots")
    created_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, related_name="+")
    status = models.CharField(max_length=8, choices=SnapshotStatus.choices, default=SnapshotStatus.PENDING)
    path = models.CharField(max_length=300, blank=True, default="", help_text="Relative to MEDIA_ROOT.")
    sha256 = models.CharField(max_length=64, blank=True, default="")
    size_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    tasks_count = models.PositiveIntegerField(null=True, blank=True)
    answers_count = models.PositiveIntegerField(null=True, blank=True)
    method = models.CharField(max_length=12, choices=AggregationMethod.choices, blank=True, default="")
    model_version = models.PositiveIntegerField(null=True, blank=True)
    parameters = models.JSONField(default=dict)
    error = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"snapshot {self.pk} of batch {self.batch_id}"

    def save(self, *args: object, **kwargs: object) -> None:
        if self.pk is not None:
            raise ValueError("Snapshots are insert-only; a pending one is completed by a conditional update.")
        super().save(*args, **kwargs)  # type: ignore[arg-type]
