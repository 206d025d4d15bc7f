"""Appeals: a worker contests a rejection; the requester, then an admin, overturns or upholds it.

- A worker appeals their own rejected answer within ``APPEAL_WINDOW`` of the rejection, once.
- The batch's requester decides until ``requester_deadline`` (``REQUESTER_WINDOW`` after the
  appeal); afterwards the beat sweep escalates the appeal and only admins decide.
- Overturning is the reversal rejected → accepted through ``verdict_apply``, so the worker is paid
  by the same budget code as any accepted answer (reserve first, topped up from available) and the
  assignment gets its event row. Upholding moves no money.

Lock order, everywhere: the assignment row, then its appeal row (then, inside ``verdict_apply``,
tasks and the batch), so an appeal decision and a review of the same answer serialise.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from marketplace.errors import Conflict, Forbidden, NotFound, ValidationFailed
from marketplace.models import Requester
from payments.errors import InsufficientFunds

from ..enums import APPEAL_TRANSITIONS, Actor, AppealDecider, AppealStatus, AssignmentStatus
from ..models import Appeal, Assignment, Worker
from .review import verdict_apply

APPEAL_WINDOW = timedelta(days=7)
REQUESTER_WINDOW = timedelta(days=3)
MESSAGE_MAX_CHARS = 2000
NOTE_MAX_CHARS = 2000
DEFAULT_OVERTURN_NOTE = "Overturned on appeal."


def _text(value: str, *, field: str, max_chars: int, required: bool) -> str:
    value = (value or "").strip()
    if required and not value:
        raise ValidationFailed(f"A {field} is required.", detail={field: ["This field may not be blank."]})
    if len(value) > max_chars:
        raise ValidationFailed(
            f"The {field} is too long.", detail={field: [f"At most {max_chars} characters."]}
        )
    return value


def appeal_open(*, worker: Worker, assignment_id: int, message: str, now: datetime | None = None) -> Appeal:
    """Appeal the rejection of one of ``worker``'s answers.

    404 for an assignment that is not the worker's; 409 ``already_appealed`` for a second appeal
    (whatever became of the first), ``not_rejected`` unless the answer is rejected, and
    ``appeal_window_closed`` more than ``APPEAL_WINDOW`` after the rejection.
    """
    message = _text(message, field="message", max_chars=MESSAGE_MAX_CHARS, required=True)
    now = now or timezone.now()
    with transaction.atomic():
        assignment = (
            Assignment.objects.select_for_update().filter(id=assignment_id, worker_id=worker.pk).first()
        )
        if assignment is None:
            raise NotFound("Assignment not found.")
        if Appeal.objects.filter(assignment_id=assignment.pk).exists():
            raise Conflict("This answer has already been appealed.", code="already_appealed")
        if assignment.status != AssignmentStatus.REJECTED:
            raise Conflict(
                f"Only a rejected answer can be appealed; this one is {assignment.status}.",
                code="not_rejected",
            )
        if assignment.reviewed_at is None or now > assignment.reviewed_at + APPEAL_WINDOW:
            raise Conflict(
                f"Rejections can be appealed within {APPEAL_WINDOW.days} days.",
                code="appeal_window_closed",
                detail={"rejected_at": assignment.reviewed_at},
            )
        # The assignment lock makes "no appeal yet" and the insert one step; the unique
        # assignment column is the backstop.
        return Appeal.objects.create(
            assignment=assignment,
            worker_id=worker.pk,
            message=message,
            created_at=now,
            requester_deadline=now + REQUESTER_WINDOW,
        )


def appeal_decide(
    appeal_id: int,
    *,
    by_user: Any,
    as_admin: bool,
    overturn: bool,
    note: str,
    now: datetime | None = None,
) -> Appeal:
    """Overturn (pay the worker) or uphold an appeal, recording who decided and why.

    The requester (``as_admin=False``: ``by_user`` must own the batch, else 404) decides an open
    appeal until its ``requester_deadline`` (afterwards 409 ``appeal_escalated``); an admin
    (``by_user.is_staff``) decides an open or escalated one at any time. A decided appeal is 409
    ``appeal_decided``. An uphold needs a ``note`` (the worker sees it).

    Overturning an answer still rejected accepts it via ``verdict_apply``, which pays the worker;
    if the requester cannot pay, 409 ``insufficient_funds`` and nothing changes (the batch is not
    paused: an appeal is not new work). An answer the requester has meanwhile accepted through
    review is already paid: overturning then only records the decision, and upholding is 409.
    """
    note = _text(note, field="note", max_chars=NOTE_MAX_CHARS, required=not overturn)
    if overturn and not note:
        note = DEFAULT_OVERTURN_NOTE
    if as_admin and not getattr(by_user, "is_staff", False):
        raise Forbidden("Only admins decide appeals as admins.")
    now = now or timezone.now()
    target = AppealStatus.OVERTURNED if overturn else AppealStatus.UPHELD
    try:
        with transaction.atomic():
            assignment_id = (
                Appeal.objects.filter(pk=appeal_id).values_list("assignment_id", flat=True).first()
            )
            if assignment_id is None:
                raise NotFound("Appeal not found.")
            assignment = (
                Assignment.objects.select_for_update(of=("self",))
                .select_related("batch__project__requester")
                .get(pk=assignment_id)
            )
            appeal = Appeal.objects.select_for_update().get(pk=appeal_id)
            appeal.assignment = assignment
            if not as_admin and assignment.batch.project.requester.user_id != by_user.pk:
                raise NotFound("Appeal not found.")
            _check_can_decide(appeal, target=target, as_admin=as_admin, now=now)
            if overturn and assignment.status == AssignmentStatus.REJECTED:
                verdict_apply(
                    [assignment],
                    target=AssignmentStatus.ACCEPTED,
                    actor=Actor.ADMIN if as_admin else Actor.REQUESTER,
                    now=now,
                    reason=note,
                    actor_user_id=by_user.pk,
                )
            elif not overturn and assignment.status != AssignmentStatus.REJECTED:
                raise Conflict(
                    f"The answer has been {assignment.status} since; the appeal cannot be upheld.",
                    code="invalid_transition",
                )
            appeal.status = target
            appeal.decided_at = now
            appeal.decided_by = by_user
            appeal.decided_by_kind = AppealDecider.ADMIN if as_admin else AppealDecider.REQUESTER
            appeal.note = note
            appeal.save(update_fields=["status", "decided_at", "decided_by", "decided_by_kind", "note"])
    except InsufficientFunds as exc:
        raise InsufficientFunds(
            "Not enough money to pay for this answer; add funds, then overturn again. Nothing was changed.",
            detail={**(exc.detail or {}), "batch": getattr(exc, "batch_id", None)},
        ) from exc
    return appeal


def _check_can_decide(appeal: Appeal, *, target: AppealStatus, as_admin: bool, now: datetime) -> None:
    if target not in APPEAL_TRANSITIONS[appeal.status]:
        raise Conflict(f"The appeal has already been {appeal.status}.", code="appeal_decided")
    if not as_admin and (appeal.status == AppealStatus.ESCALATED or now > appeal.requester_deadline):
        raise Conflict(
            f"Appeals are yours to decide for {REQUESTER_WINDOW.days} days; this one has gone to the admins.",
            code="appeal_escalated",
            detail={"requester_deadline": appeal.requester_deadline},
        )


def appeals_escalate(*, now: datetime | None = None) -> int:
    """Escalate every open appeal past its ``requester_deadline`` to the admins; returns how many.

    One UPDATE: a decision racing with it holds the appeal's row lock, and PostgreSQL re-checks
    ``status = open`` after the lock is released, so a decided appeal is never escalated. Safe to
    run twice or concurrently.
    """
    now = now or timezone.now()
    return Appeal.objects.filter(status=AppealStatus.OPEN, requester_deadline__lt=now).update(
        status=AppealStatus.ESCALATED, escalated_at=now
    )


# --- reads ------------------------------------------------------------------------------------


def appeal_list_for_worker(*, worker: Worker) -> QuerySet[Appeal]:
    return Appeal.objects.filter(worker_id=worker.pk).select_related("assignment")


def appeal_list_for_requester(*, requester: Requester, status: str | None = None) -> QuerySet[Appeal]:
    qs = Appeal.objects.filter(assignment__batch__project__requester=requester).select_related("assignment")
    if status:
        qs = qs.filter(status=status)
    return qs
