"""Requester-side states, each with the transitions it allows written beside it."""

from django.db import models


class BatchStatus(models.TextChoices):
    """A batch (pool) is edited as a draft, published to workers, paused and resumed, then closed.

    draft  → open (publish), closed (close)
    open   → paused (pause), closed (close)
    paused → open (publish), closed (close)
    closed → (final)
    """

    DRAFT = "draft"
    OPEN = "open"
    PAUSED = "paused"
    CLOSED = "closed"


BATCH_TRANSITIONS: dict[str, frozenset[str]] = {
    BatchStatus.DRAFT: frozenset({BatchStatus.OPEN, BatchStatus.CLOSED}),
    BatchStatus.OPEN: frozenset({BatchStatus.PAUSED, BatchStatus.CLOSED}),
    BatchStatus.PAUSED: frozenset({BatchStatus.OPEN, BatchStatus.CLOSED}),
    BatchStatus.CLOSED: frozenset(),
}


class TaskStatus(models.TextChoices):
    """open → complete once ``answers_count`` reaches the task's ``overlap``.

    Gold tasks stay open: every worker may see each gold task once, they never count toward results.
    """

    OPEN = "open"
    COMPLETE = "complete"


class AggregationMethod(models.TextChoices):
    """How a batch turns its answers into one consensus per task (``crowd.aggregation``).

    majority     every answer counts once; confidence = vote share
    weighted     answers weighted by the worker's gold-based reliability (log-odds); confidence =
                 weighted vote share
    dawid_skene  Dawid-Skene EM over the whole batch (gold tasks clamped); confidence = posterior
    """

    MAJORITY = "majority"
    WEIGHTED = "weighted"
    DAWID_SKENE = "dawid_skene"


class Role(models.TextChoices):
    REQUESTER = "requester"
    WORKER = "worker"


class ReviewMode(models.TextChoices):
    """How a batch's answers get their verdict (the outcome payments follow).

    manual  the requester reviews; whatever is still submitted after ``auto_accept_after_hours``
            is accepted by the beat sweep
    auto    accepted at submit, unless a QC rule rejected it first
    gold    gold answers accepted or rejected by their score at submit; the rest accepted at submit
    """

    MANUAL = "manual"
    AUTO = "auto"
    GOLD = "gold"


class AnswerComparison(models.TextChoices):
    """How an answer is compared with a gold answer (``Project.answer_comparison["kind"]``).

    exact    JSON equality (categorical answers)
    numeric  ``|answer - gold| <= tolerance``
    set      multi-label: the same set of labels
    jaccard  multi-label: ``|A and G| / |A or G| >= threshold`` (the score is the Jaccard index)
    """

    EXACT = "exact"
    NUMERIC = "numeric"
    SET = "set"
    JACCARD = "jaccard"


class SkillOp(models.TextChoices):
    """Comparators of a batch's skill filter."""

    GTE = ">="
    LTE = "<="
    EQ = "=="
    EXISTS = "exists"
    NOT_EXISTS = "not exists"


class SnapshotStatus(models.TextChoices):
    """A results snapshot is written by a Celery task: pending → ready (file written) or failed."""

    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"
