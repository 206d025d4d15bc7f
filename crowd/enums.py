"""Worker-side states, each with the transitions it allows written beside it."""

from django.db import models


class AssignmentStatus(models.TextChoices):
    """One worker's lease on one task, then their answer.

    active → submitted (submit before ``expires_at``)
    active → expired   (lease ran out: lazily at claim/submit time or by the beat sweep)
    active → skipped   (the worker declined this task; counts as a skip for quality rules)
    active → released  (the worker handed the lease back, or the batch was closed)
    Every move out of ``active`` except ``submitted`` gives the task's slot back. The worker never
    gets the same task again either way: (task, worker) is unique.
    """

    ACTIVE = "active"
    SUBMITTED = "submitted"
    EXPIRED = "expired"
    SKIPPED = "skipped"
    RELEASED = "released"


ASSIGNMENT_TRANSITIONS: dict[str, frozenset[str]] = {
    AssignmentStatus.ACTIVE: frozenset(
        {
            AssignmentStatus.SUBMITTED,
            AssignmentStatus.EXPIRED,
            AssignmentStatus.SKIPPED,
            AssignmentStatus.RELEASED,
        }
    ),
    AssignmentStatus.SUBMITTED: frozenset(),
    AssignmentStatus.EXPIRED: frozenset(),
    AssignmentStatus.SKIPPED: frozenset(),
    AssignmentStatus.RELEASED: frozenset(),
}
