"""Worker-side states, each with the transitions it allows written beside it."""

from django.db import models


class AssignmentStatus(models.TextChoices):
    """One worker's lease on one task, then their answer, then the requester's verdict.

    active    → submitted (submit before ``expires_at``)
    active    → expired   (lease ran out: lazily at claim/submit time or by the beat sweep)
    active    → skipped   (the worker declined this task; counts as a skip for quality rules)
    active    → released  (the worker handed the lease back, or the batch was closed)
    submitted → accepted  (requester, review mode, QC or the auto-accept sweep)
    submitted → rejected  (requester or a QC rule; a reason the worker sees is required)
    rejected  → accepted  (reversal by the requester)
    Every move out of ``active`` except ``submitted`` gives the task's slot back, and so does a
    rejection (the task reopens for another worker). A reversal takes the slot again, growing the
    task's overlap by one if another worker has filled it meanwhile. The worker never gets the
    same task again either way: (task, worker) is unique. Every transition writes an
    ``AssignmentEvent`` row.
    """

    ACTIVE = "active"
    SUBMITTED = "submitted"
    EXPIRED = "expired"
    SKIPPED = "skipped"
    RELEASED = "released"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


ASSIGNMENT_TRANSITIONS: dict[str, frozenset[str]] = {
    AssignmentStatus.ACTIVE: frozenset(
        {
            AssignmentStatus.SUBMITTED,
            AssignmentStatus.EXPIRED,
            AssignmentStatus.SKIPPED,
            AssignmentStatus.RELEASED,
        }
    ),
    AssignmentStatus.SUBMITTED: frozenset({AssignmentStatus.ACCEPTED, AssignmentStatus.REJECTED}),
    AssignmentStatus.EXPIRED: frozenset(),
    AssignmentStatus.SKIPPED: frozenset(),
    AssignmentStatus.RELEASED: frozenset(),
    AssignmentStatus.ACCEPTED: frozenset(),
    AssignmentStatus.REJECTED: frozenset({AssignmentStatus.ACCEPTED}),
}

# States that hold a slot of a regular task (``Task.slots_taken``) and count as its answers.
SLOT_HOLDING = (AssignmentStatus.ACTIVE, AssignmentStatus.SUBMITTED, AssignmentStatus.ACCEPTED)
ANSWERED = (AssignmentStatus.SUBMITTED, AssignmentStatus.ACCEPTED)


class AppealStatus(models.TextChoices):
    """A worker's appeal against a rejection.

    open      → overturned | upheld  (the batch's requester, until ``requester_deadline``; an
                                      admin at any time)
    open      → escalated            (the beat sweep, once ``requester_deadline`` has passed)
    escalated → overturned | upheld  (an admin, in the Django admin)
    overturned, upheld → (final)
    Overturning moves the assignment rejected → accepted, which pays the worker.
    """

    OPEN = "open"
    ESCALATED = "escalated"
    OVERTURNED = "overturned"
    UPHELD = "upheld"


APPEAL_TRANSITIONS: dict[str, frozenset[str]] = {
    AppealStatus.OPEN: frozenset({AppealStatus.ESCALATED, AppealStatus.OVERTURNED, AppealStatus.UPHELD}),
    AppealStatus.ESCALATED: frozenset({AppealStatus.OVERTURNED, AppealStatus.UPHELD}),
    AppealStatus.OVERTURNED: frozenset(),
    AppealStatus.UPHELD: frozenset(),
}
APPEAL_UNDECIDED = (AppealStatus.OPEN, AppealStatus.ESCALATED)


class AppealDecider(models.TextChoices):
    """Who decided an appeal."""

    REQUESTER = "requester"
    ADMIN = "admin"


class Actor(models.TextChoices):
    """Who caused a transition or created a restriction."""

    WORKER = "worker"
    REQUESTER = "requester"
    ADMIN = "admin"
    SYSTEM = "system"  # sweeps, review modes
    RULE = "rule"  # a QC rule


class Verdict(models.TextChoices):
    ACCEPT = "accept"
    REJECT = "reject"


class RestrictionScope(models.TextChoices):
    """How far a restriction reaches: one batch, one project, all of a requester's projects, or
    the whole platform (admins only)."""

    BATCH = "batch"
    PROJECT = "project"
    REQUESTER = "requester"
    PLATFORM = "platform"


class RuleKind(models.TextChoices):
    """QC rule conditions over a rolling window of the worker's recent work in the batch.

    gold_accuracy       gold accuracy < ``threshold`` after ≥ ``min_answers`` gold answers (last ``window``)
    fast_responses      ≥ ``count`` of the last ``window`` submits took < ``seconds``
    skips_in_row        ≥ ``count`` skips in a row (last actions)
    majority_agreement  agreement with the current majority < ``threshold`` after ≥ ``min_answers``
                        overlapping tasks (last ``window``)
    """

    GOLD_ACCURACY = "gold_accuracy"
    FAST_RESPONSES = "fast_responses"
    SKIPS_IN_ROW = "skips_in_row"
    MAJORITY_AGREEMENT = "majority_agreement"
