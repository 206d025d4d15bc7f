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


class Role(models.TextChoices):
    REQUESTER = "requester"
    WORKER = "worker"
