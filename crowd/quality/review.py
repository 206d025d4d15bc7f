"""Verdicts: submitted → accepted | rejected, rejected → accepted; and the auto-accept sweep.

Every verdict locks the assignment rows (in id order), checks each transition, and keeps the
regular task's counters exact: a rejection gives its slot and its answer back and reopens the
task; a reversal takes them again, growing the task's overlap by one when another worker has
filled the reopened slot meanwhile (the accepted answer is paid for, so it counts).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Greatest
from django.utils import timezone

from marketplace.enums import ReviewMode, TaskStatus
from marketplace.errors import Conflict, NotFound, ValidationFailed
from marketplace.models import Batch, Requester, Task
from marketplace.services import budget
from payments.errors import InsufficientFunds

from ..enums import ASSIGNMENT_TRANSITIONS, Actor, AssignmentStatus, Verdict
from ..models import Assignment
from .events import events_add
from .reliability import reveal_delay

MAX_REVIEW_IDS = 1000
AUTO_ACCEPT_REASON = "Accepted automatically: not reviewed within {hours} hours."
WRONG_GOLD_REASON = "The answer did not match the expected answer."


def _lock_tasks(task_ids: Sequence[int]) -> None:
    list(Task.objects.select_for_update().filter(id__in=set(task_ids)).order_by("id").values_list("id"))


def _move_counters(task_counts: Counter[int], *, reopen: bool) -> None:
    """Rejection (``reopen``): give slots and answers back. Reversal: take them again."""
    by_amount: dict[int, list[int]] = {}
    for task_id, amount in task_counts.items():
        by_amount.setdefault(amount, []).append(task_id)
    for n, ids in by_amount.items():
        tasks = Task.objects.filter(id__in=ids, is_gold=False)
        if reopen:
            tasks.update(
                slots_taken=F("slots_taken") - n, answers_count=F("answers_count") - n, status=TaskStatus.OPEN
            )
        else:
            overlap = Greatest(F("overlap"), F("slots_taken") + n)
            tasks.update(
                overlap=overlap,
                slots_taken=F("slots_taken") + n,
                answers_count=F("answers_count") + n,
                status=Case(
                    When(answers_count__gte=overlap - n, then=Value(TaskStatus.COMPLETE)), default=F("status")
                ),
            )


def verdict_apply(
    locked: Sequence[Assignment],
    *,
    target: AssignmentStatus,
    actor: Actor,
    now: datetime,
    reason: str = "",
    actor_user_id: int | None = None,
    rule_id: int | None = None,
) -> None:
    """Move row-locked assignments, all allowed to reach ``target``, there. Caller holds the
    transaction and has checked the transitions."""
    by_from: dict[str, list[Assignment]] = {}
    for a in locked:
        by_from.setdefault(a.status, []).append(a)
    regular = [a.task_id for a in locked if not a.is_gold]
    if regular and (target == AssignmentStatus.REJECTED or AssignmentStatus.REJECTED in by_from):
        _lock_tasks(regular)
    if target == AssignmentStatus.ACCEPTED:
        # Money follows the verdict, in the same transaction: InsufficientFunds undoes both.
        budget.batch_pay_accepted(locked)
    for from_status, rows in by_from.items():
        ids = [a.pk for a in rows]
        Assignment.objects.filter(id__in=ids).update(status=target, reviewed_at=now, review_reason=reason)
        counts = Counter(a.task_id for a in rows if not a.is_gold)
        if counts and target == AssignmentStatus.REJECTED:
            _move_counters(counts, reopen=True)
        elif counts and from_status == AssignmentStatus.REJECTED:
            _move_counters(counts, reopen=False)
        events_add(
            ids,
            from_status=from_status,
            to_status=target,
            actor=actor,
            now=now,
            actor_user_id=actor_user_id,
            rule_id=rule_id,
            reason=reason,
        )
        for a in rows:
            a.status, a.reviewed_at, a.review_reason = target, now, reason


def assignments_review(
    *, requester: Requester, assignment_ids: Sequence[int], verdict: str, reason: str = "", user_id: int
) -> list[Assignment]:
    """Accept or reject assignments of the requester's batches, all or nothing.

    Ids that are not the requester's (or do not exist) → 404 naming them, nothing changed. Any
    assignment whose state does not allow the verdict (already reviewed the same way, still
    active, …) → 409 with one error per id, nothing changed. A rejection needs a reason (the
    worker sees it). Returns the assignments in id order.
    """
    return _review(
        owner=Q(batch__project__requester=requester),
        assignment_ids=assignment_ids,
        verdict=verdict,
        reason=reason,
        actor=Actor.REQUESTER,
        user_id=user_id,
    )


def assignments_review_by_admin(
    *,
    assignment_ids: Sequence[int],
    verdict: str,
    reason: str = "",
    user_id: int,
    from_status: AssignmentStatus | None = None,
) -> list[Assignment]:
    """An admin's verdict on answers of any batch: the requester's rules, counters, payment and
    events (``assignments_review``), recorded as ``Actor.ADMIN`` with the admin's user.

    ``from_status`` narrows the state the answers must be in (409 otherwise), so an admin's
    "accept" never reverses a rejection by accident and "reverse" only takes rejected answers.
    """
    return _review(
        owner=Q(),
        assignment_ids=assignment_ids,
        verdict=verdict,
        reason=reason,
        actor=Actor.ADMIN,
        user_id=user_id,
        from_status=from_status,
    )


def _review(
    *,
    owner: Q,
    assignment_ids: Sequence[int],
    verdict: str,
    reason: str,
    actor: Actor,
    user_id: int,
    from_status: AssignmentStatus | None = None,
) -> list[Assignment]:
    """The review of ``assignments_review``, over the assignments ``owner`` lets the caller see."""
    ids = sorted(set(assignment_ids))
    reason = reason.strip()
    if verdict == Verdict.REJECT and not reason:
        raise ValidationFailed("A rejection needs a reason.", detail={"reason": ["Required to reject."]})
    target = AssignmentStatus.ACCEPTED if verdict == Verdict.ACCEPT else AssignmentStatus.REJECTED
    now = timezone.now()
    try:
        with transaction.atomic():
            locked = list(
                Assignment.objects.select_for_update(of=("self",)).filter(owner, id__in=ids).order_by("id")
            )
            missing = sorted(set(ids) - {a.pk for a in locked})
            if missing:
                raise NotFound("Assignment not found.", detail={"ids": missing})
            refused: dict[str, str] = {}
            for a in locked:
                if target not in ASSIGNMENT_TRANSITIONS[a.status]:
                    refused[str(a.pk)] = f"The assignment is {a.status}; it cannot become {target}."
                elif from_status is not None and a.status != from_status:
                    refused[str(a.pk)] = f"The assignment is {a.status}, not {from_status}."
            if refused:
                raise Conflict(
                    "Some assignments cannot take this verdict; nothing was changed.",
                    code="invalid_transition",
                    detail={"errors": refused},
                )
            verdict_apply(locked, target=target, actor=actor, now=now, reason=reason, actor_user_id=user_id)
    except InsufficientFunds as exc:
        # Everything above was rolled back; the batch that could not pay stops taking work.
        batch_id = getattr(exc, "batch_id", None)
        if batch_id is not None:
            budget.batch_pause_for_funds(batch_id=batch_id)
        raise InsufficientFunds(
            "Not enough money to pay for these answers; nothing was changed and the batch is paused "
            "until you add funds.",
            detail={**(exc.detail or {}), "batch": batch_id},
        ) from exc
    return locked


def assignment_accept_if_submitted(
    *, assignment_id: int, actor: Actor = Actor.SYSTEM, reason: str = ""
) -> str:
    """Accept one answer if it is still waiting (review modes auto/gold). Returns its status."""
    try:
        with transaction.atomic():
            a = Assignment.objects.select_for_update().filter(id=assignment_id).first()
            if a is None:
                raise NotFound("Assignment not found.")
            if a.status == AssignmentStatus.SUBMITTED:
                verdict_apply(
                    [a], target=AssignmentStatus.ACCEPTED, actor=actor, now=timezone.now(), reason=reason
                )
            return a.status
    except InsufficientFunds as exc:
        # The answer stays submitted (nothing is lost); the batch stops taking work.
        budget.batch_pause_for_funds(batch_id=exc.batch_id)  # type: ignore[attr-defined]
        return AssignmentStatus.SUBMITTED


def assignments_auto_accept(*, now: datetime | None = None, chunk: int = 500) -> int:
    """Accept every answer left submitted longer than its batch's ``auto_accept_after_hours``.

    Chunks of ``chunk`` rows, each in its own short transaction, skipping rows a reviewer holds:
    safe to run twice or concurrently (a row is accepted once). Returns how many were accepted.
    """
    now = now or timezone.now()
    total = 0
    unpaid: set[int] = set()  # batches that could not pay: skipped, then paused
    for hours in sorted(set(Batch.objects.values_list("auto_accept_after_hours", flat=True))):
        cutoff = now - timedelta(hours=hours)
        while True:
            with transaction.atomic():
                rows = list(
                    Assignment.objects.select_for_update(skip_locked=True, of=("self",))
                    .filter(
                        status=AssignmentStatus.SUBMITTED,
                        submitted_at__lte=cutoff,
                        batch__auto_accept_after_hours=hours,
                    )
                    .exclude(batch_id__in=unpaid)
                    .exclude(batch__review_mode=ReviewMode.GOLD, batch__is_training=False)
                    .order_by("submitted_at", "id")[:chunk]
                )
                by_batch: dict[int, list[Assignment]] = {}
                for a in rows:
                    by_batch.setdefault(a.batch_id, []).append(a)
                for batch_id, batch_rows in by_batch.items():
                    try:
                        with transaction.atomic():
                            verdict_apply(
                                batch_rows,
                                target=AssignmentStatus.ACCEPTED,
                                actor=Actor.SYSTEM,
                                now=now,
                                reason=AUTO_ACCEPT_REASON.format(hours=hours),
                            )
                        total += len(batch_rows)
                    except InsufficientFunds:
                        unpaid.add(batch_id)
            if len(rows) < chunk:
                break
    for batch_id in sorted(unpaid):
        budget.batch_pause_for_funds(batch_id=batch_id)
    return total


def assignments_gold_review(*, now: datetime | None = None, chunk: int = 500) -> int:
    """Review mode ``gold``: decide every answer once it is older than the gold reveal delay
    (``GOLD_REVEAL_DELAY_HOURS``): a wrong control answer is rejected, everything else accepted.

    Nothing is decided at submit, so a worker cannot tell a control task from a regular one by
    the verdict or its timing; the delay is the one after which ``work/me`` shows a control answer
    in the worker's reliability anyway. Chunked, SKIP LOCKED, idempotent like the auto-accept sweep;
    a batch that cannot pay is paused and its answers wait for the next run. Returns how many
    answers were decided.
    """
    now = now or timezone.now()
    cutoff = now - reveal_delay()
    total = 0
    unpaid: set[int] = set()
    while True:
        with transaction.atomic():
            rows = list(
                Assignment.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(
                    status=AssignmentStatus.SUBMITTED,
                    submitted_at__lte=cutoff,
                    batch__review_mode=ReviewMode.GOLD,
                    batch__is_training=False,
                )
                .exclude(batch_id__in=unpaid)
                .order_by("submitted_at", "id")[:chunk]
            )
            by_batch: dict[int, list[Assignment]] = {}
            for a in rows:
                by_batch.setdefault(a.batch_id, []).append(a)
            for batch_id, batch_rows in by_batch.items():
                wrong = [a for a in batch_rows if a.gold_correct is False]
                right = [a for a in batch_rows if a.gold_correct is not False]
                try:
                    with transaction.atomic():
                        if right:
                            verdict_apply(
                                right, target=AssignmentStatus.ACCEPTED, actor=Actor.SYSTEM, now=now
                            )
                        if wrong:
                            verdict_apply(
                                wrong,
                                target=AssignmentStatus.REJECTED,
                                actor=Actor.SYSTEM,
                                now=now,
                                reason=WRONG_GOLD_REASON,
                            )
                    total += len(batch_rows)
                except InsufficientFunds:
                    unpaid.add(batch_id)
        if len(rows) < chunk:
            break
    for batch_id in sorted(unpaid):
        budget.batch_pause_for_funds(batch_id=batch_id)
    return total
