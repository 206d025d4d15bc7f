"""Ending a lease: submit an answer, skip the task, or release it."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, Exists, F, OuterRef, Value, When
from django.utils import timezone

from marketplace.enums import BatchStatus, ReviewMode, TaskStatus
from marketplace.errors import Conflict, NotFound, ValidationFailed
from marketplace.models import Task
from marketplace.schemas import UNSTORABLE, SchemaTooCostly, answer_validator, json_column, storable
from marketplace.services import consensus

from ..enums import Actor, AssignmentStatus
from ..models import Assignment, QualityRule, Worker
from ..quality.events import EVENT_COLUMNS, events_add
from ..quality.reliability import reliability_bump
from ..quality.review import assignment_accept_if_submitted
from ..quality.rules import rules_evaluate
from ..quality.scoring import gold_score
from ..quality.training import training_finish_if_done
from .leases import slots_return

logger = logging.getLogger(__name__)


def _lock_for_worker(*, worker: Worker, assignment_id: int) -> Assignment:
    """The worker's own assignment, row-locked, with its batch, project and task, and whether the
    batch has active QC rules (``has_rules``); anyone else's is 404."""
    assignment = (
        Assignment.objects.select_for_update(of=("self",))
        .select_related("batch__project", "task")
        .annotate(has_rules=Exists(QualityRule.objects.filter(batch_id=OuterRef("batch_id"), is_active=True)))
        .filter(id=assignment_id, worker=worker)
        .first()
    )
    if assignment is None:
        raise NotFound("Assignment not found.")
    return assignment


def _comparable(value: Any) -> Any:
    """A JSON value in a form where equal JSON compares equal: ``1`` and ``1.0`` are one number
    (the database may store either), while ``true`` and ``1`` differ (Python's ``==`` says not)."""
    if isinstance(value, bool) or value is None:
        return ("literal", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, list):
        return ("array", tuple(_comparable(v) for v in value))
    if isinstance(value, dict):
        return ("object", frozenset((k, _comparable(v)) for k, v in value.items()))
    return ("string", value)


def same_json(a: Any, b: Any) -> bool:
    return _comparable(a) == _comparable(b)


def _expire_now(assignment: Assignment, now: Any) -> None:
    assignment.status = AssignmentStatus.EXPIRED
    assignment.ended_at = now
    assignment.save(update_fields=["status", "ended_at"])
    events_add(
        [assignment.pk],
        from_status=AssignmentStatus.ACTIVE,
        to_status=AssignmentStatus.EXPIRED,
        actor=Actor.SYSTEM,
        now=now,
    )
    if not assignment.is_gold:
        slots_return([assignment.task_id])


def _check_active(assignment: Assignment, now: Any) -> Conflict | None:
    """The conflict that stops ending this lease, if any; an overdue lease is expired on the spot."""
    if assignment.status != AssignmentStatus.ACTIVE:
        return Conflict(
            f"The assignment is {assignment.status}.",
            code=f"assignment_{assignment.status}",
            detail={"status": assignment.status},
        )
    if assignment.expires_at <= now:
        _expire_now(assignment, now)
        return Conflict(
            "The lease expired before the answer arrived.",
            code="assignment_expired",
            detail={
                "status": AssignmentStatus.EXPIRED,
                "expires_at": assignment.expires_at.isoformat().replace("+00:00", "Z"),
            },
        )
    return None


def _answer_errors(answer: Any, *, project_id: int, version: Any) -> None:
    try:
        found = answer_validator(project_id, version).iter_errors(answer)
    except SchemaTooCostly as exc:
        raise ValidationFailed(
            "The answer could not be checked against the answer schema.", detail={"answer": [exc.problem]}
        ) from None
    errors = [f"{e.json_path}: {e.message}" for e in found]
    if errors:
        raise ValidationFailed("The answer does not match the answer schema.", detail={"answer": errors})
    if not storable(answer):
        raise ValidationFailed("The answer cannot be stored.", detail={"answer": [UNSTORABLE]})


# The PostgreSQL fast path: read without a lock, then one conditional statement that records the
# answer only if the lease is still this worker's, active and unexpired, and bumps the task's
# counters in the same statement. If the condition fails, the locked path below decides why.
# A gold answer of a regular batch is scored between the two and the same statement counts it in
# the worker's project and global reliability (atomic upserts: parallel submits lose no count).
# Training answers and the ``gold`` review mode take the locked path, which does more in the
# submit's transaction. The read also says whether the batch has QC rules and how it is reviewed,
# so a plain submit to a plain batch stays at two statements.
_SUBMIT_READ_SQL = """
SELECT a.status, a.expires_at, a.batch_id, b.status, b.project_id, p.updated_at,
       t.gold_answer IS NOT NULL, b.review_mode,
       EXISTS (SELECT 1 FROM crowd_qualityrule q WHERE q.batch_id = b.id AND q.is_active),
       CASE WHEN b.max_overlap IS NULL THEN NULL ELSE COALESCE(b.min_overlap, b.overlap) END,
       b.is_training OR NOT t.is_gold, t.gold_answer, p.answer_comparison, b.is_training
FROM crowd_assignment a
JOIN marketplace_batch b ON b.id = a.batch_id
JOIN marketplace_project p ON p.id = b.project_id
JOIN marketplace_task t ON t.id = a.task_id
WHERE a.id = %(id)s AND a.worker_id = %(worker)s
"""
_SUBMIT_WRITE_SQL = f"""
WITH upd AS (
    UPDATE crowd_assignment
    SET status = 'submitted', answer = %(answer)s::jsonb, submitted_at = %(now)s, submit_key = %(key)s
    WHERE id = %(id)s AND worker_id = %(worker)s AND status = 'active' AND expires_at > %(now)s
    RETURNING id, task_id, is_gold
),
event AS (
    INSERT INTO crowd_assignmentevent ({EVENT_COLUMNS})
    SELECT id, 'active', 'submitted', 'worker', %(user)s, NULL, '', %(now)s FROM upd
),
bump AS (
    UPDATE marketplace_task t
    SET answers_count = t.answers_count + 1,
        status = CASE WHEN t.answers_count + 1 >= t.overlap THEN 'complete' ELSE t.status END,
        consensus_due = t.consensus_due
            OR t.answers_count + 1 >= LEAST(t.overlap, COALESCE(%(min_overlap)s::integer, t.overlap))
    FROM upd WHERE t.id = upd.task_id AND NOT upd.is_gold
    RETURNING t.consensus_due
)
SELECT (SELECT count(*) FROM upd), bump.consensus_due
FROM (SELECT 1) one LEFT JOIN bump ON true
"""
_SUBMIT_GOLD_WRITE_SQL = f"""
WITH upd AS (
    UPDATE crowd_assignment
    SET status = 'submitted', answer = %(answer)s::jsonb, submitted_at = %(now)s, submit_key = %(key)s,
        gold_correct = %(correct)s, gold_score = %(score)s
    WHERE id = %(id)s AND worker_id = %(worker)s AND status = 'active' AND expires_at > %(now)s
    RETURNING id
),
event AS (
    INSERT INTO crowd_assignmentevent ({EVENT_COLUMNS})
    SELECT id, 'active', 'submitted', 'worker', %(user)s, NULL, '', %(now)s FROM upd
),
per_project AS (
    INSERT INTO crowd_reliability (worker_id, project_id, gold_correct, gold_total, updated_at)
    SELECT %(worker)s, %(project)s, %(n_correct)s, 1, %(now)s FROM upd
    ON CONFLICT (worker_id, project_id) WHERE project_id IS NOT NULL DO UPDATE
    SET gold_correct = crowd_reliability.gold_correct + EXCLUDED.gold_correct,
        gold_total = crowd_reliability.gold_total + 1, updated_at = EXCLUDED.updated_at
),
overall AS (
    INSERT INTO crowd_reliability (worker_id, project_id, gold_correct, gold_total, updated_at)
    SELECT %(worker)s, NULL, %(n_correct)s, 1, %(now)s FROM upd
    ON CONFLICT (worker_id) WHERE project_id IS NULL DO UPDATE
    SET gold_correct = crowd_reliability.gold_correct + EXCLUDED.gold_correct,
        gold_total = crowd_reliability.gold_total + 1, updated_at = EXCLUDED.updated_at
)
SELECT count(*) FROM upd
"""


def _submit_fast(
    *, worker: Worker, assignment_id: int, answer: Any, idempotency_key: str, now: Any
) -> Assignment | None:
    """Returns the submitted assignment, or None when the locked path must decide."""
    params = {"id": assignment_id, "worker": worker.pk}
    with connection.cursor() as cursor:
        cursor.execute(_SUBMIT_READ_SQL, params)
        row = cursor.fetchone()
        if row is None:
            raise NotFound("Assignment not found.")
        status, expires_at, batch_id, batch_status, project_id, version, scored, review_mode = row[:8]
        has_rules, min_overlap, locked_scoring, gold_answer, comparison, is_training = row[8:]
        if (
            status != AssignmentStatus.ACTIVE
            or expires_at <= now
            or batch_status == BatchStatus.CLOSED
            or (scored and locked_scoring)
        ):
            return None
        _answer_errors(answer, project_id=project_id, version=version)
        write = {
            **params,
            "answer": json.dumps(answer),
            "now": now,
            "key": idempotency_key,
            "user": worker.user_id,
            "min_overlap": min_overlap,
        }
        correct = score = due = None
        if scored:
            correct, score = gold_score(answer, json_column(gold_answer), json_column(comparison))
            cursor.execute(
                _SUBMIT_GOLD_WRITE_SQL,
                {
                    **write,
                    "correct": correct,
                    "score": score,
                    "n_correct": int(correct),
                    "project": project_id,
                },
            )
            (written,) = cursor.fetchone()
        else:
            cursor.execute(_SUBMIT_WRITE_SQL, write)
            written, due = cursor.fetchone()
        if written != 1:
            return None
    done = Assignment(
        id=assignment_id,
        batch_id=batch_id,
        worker=worker,
        status=AssignmentStatus.SUBMITTED,
        answer=answer,
        submitted_at=now,
        submit_key=idempotency_key,
        gold_correct=correct,
        gold_score=score,
    )
    _after_submit(done, review_mode=review_mode, has_rules=has_rules, is_training=is_training)
    # Only a submit that brought the task to its overlap (or its dynamic minimum) sets this off.
    if due:
        consensus_drain_soon(batch_id=batch_id)
    return done


# When this process last queued a drain of a batch's due consensus, and when that drain starts.
_drain_starts: dict[int, float] = {}


def consensus_drain_soon(*, batch_id: int) -> None:
    """Make sure a ``crowd.tasks.batch_consensus_drain`` of the batch starts after this moment
    (call after the commit that marked a task ``consensus_due``).

    The consensus is not computed here: at overlap 1 every regular answer completes its task and
    no gold answer does, so work done in the request would time regular answers apart from gold
    ones. Nor is a Celery message sent per task: one drain computes every task due by the time it
    starts, and this process queues a new one only when the last it queued has started (at most
    one every ``CONSENSUS_DRAIN_DELAY_MS`` per batch and process). With eager Celery (the demo) the
    drain runs here and now. A failure to queue is logged; the submit stands, and the periodic
    re-fit computes the consensus later.
    """
    from ..tasks import batch_consensus_drain

    eager = batch_consensus_drain.app.conf.task_always_eager
    now = time.monotonic()
    if not eager and _drain_starts.get(batch_id, 0.0) > now:
        return  # that drain has not started: it will find this task
    delay = settings.CONSENSUS_DRAIN_DELAY_MS / 1000
    try:
        batch_consensus_drain.apply_async((batch_id,), countdown=delay)
    except Exception:
        logger.exception("no consensus drain for batch %s; the re-fit will catch up", batch_id)
        return
    if eager:
        return
    if len(_drain_starts) > 10_000:
        _drain_starts.clear()
    _drain_starts[batch_id] = now + delay


def _after_submit(assignment: Assignment, *, review_mode: str, has_rules: bool, is_training: bool) -> None:
    """After the submit commits: run the batch's QC rules, then the review mode's verdict.

    Rules first, so a rule that rejects the worker's pending answers gets there before ``auto``
    accepts them. ``gold`` decides nothing here: its verdicts wait for ``assignments_gold_review``,
    so a wrong control answer answers exactly like a regular one (training batches, where every
    task is a known control, are accepted at once as before). Updates ``assignment.status`` to
    what the worker's response must show.
    """
    if has_rules:
        rules_evaluate(worker_id=assignment.worker.pk, batch_id=assignment.batch_id)
    if review_mode == ReviewMode.AUTO or (review_mode == ReviewMode.GOLD and is_training):
        assignment.status = assignment_accept_if_submitted(assignment_id=assignment.pk)
    elif has_rules:
        assignment.status = Assignment.objects.values_list("status", flat=True).get(pk=assignment.pk)


def assignment_submit(
    *, worker: Worker, assignment_id: int, answer: Any, idempotency_key: str = ""
) -> Assignment:
    """Record the worker's answer to their active lease.

    The answer must satisfy the project's ``answer_schema`` (400 with every violation). A retry
    carrying the same ``Idempotency-Key`` and answer as the accepted submit returns that first
    result; the same key with another answer is 409 ``idempotency_key_reused``; any other second
    submit is 409. An overdue lease is expired (its slot returned) and refused with
    409, as is an answer to a closed batch. Side effect: the task's ``answers_count`` grows and the
    task becomes ``complete`` at its overlap.
    """
    now = timezone.now()
    if connection.vendor == "postgresql":
        done = _submit_fast(
            worker=worker,
            assignment_id=assignment_id,
            answer=answer,
            idempotency_key=idempotency_key,
            now=now,
        )
        if done is not None:
            return done
    return _submit_locked(
        worker=worker, assignment_id=assignment_id, answer=answer, idempotency_key=idempotency_key, now=now
    )


def _submit_locked(
    *, worker: Worker, assignment_id: int, answer: Any, idempotency_key: str, now: Any
) -> Assignment:
    """The portable path: lock the assignment row, decide, write. Also the fast path's referee."""
    conflict: Conflict | None = None
    update_consensus = False
    with transaction.atomic():
        assignment = _lock_for_worker(worker=worker, assignment_id=assignment_id)
        if (
            assignment.status
            in (AssignmentStatus.SUBMITTED, AssignmentStatus.ACCEPTED, AssignmentStatus.REJECTED)
            and idempotency_key
            and assignment.submit_key == idempotency_key
        ):
            if not same_json(assignment.answer, answer):
                raise Conflict(
                    "This Idempotency-Key was used to submit a different answer.",
                    code="idempotency_key_reused",
                    detail={"assignment": assignment.pk},
                )
            return assignment
        conflict = _check_active(assignment, now)
        if conflict is None:
            batch = assignment.batch
            if batch.status == BatchStatus.CLOSED:
                raise Conflict("The batch is closed.", code="batch_closed")
            _answer_errors(answer, project_id=batch.project_id, version=batch.project.updated_at)
            assignment.status = AssignmentStatus.SUBMITTED
            assignment.answer = answer
            assignment.submitted_at = now
            assignment.submit_key = idempotency_key
            if assignment.task.gold_answer is not None:
                _score(assignment, worker=worker, now=now)
            assignment.save(
                update_fields=[
                    "status",
                    "answer",
                    "submitted_at",
                    "submit_key",
                    "gold_correct",
                    "gold_score",
                    "feedback",
                ]
            )
            events_add(
                [assignment.pk],
                from_status=AssignmentStatus.ACTIVE,
                to_status=AssignmentStatus.SUBMITTED,
                actor=Actor.WORKER,
                actor_user_id=worker.user_id,
                now=now,
            )
            if not assignment.is_gold:
                Task.objects.filter(id=assignment.task_id).update(
                    answers_count=F("answers_count") + 1,
                    status=Case(
                        When(answers_count__gte=F("overlap") - 1, then=Value(TaskStatus.COMPLETE)),
                        default=F("status"),
                    ),
                )
                # Read back under the row lock the UPDATE took: exact even with parallel submits.
                answers, overlap = Task.objects.values_list("answers_count", "overlap").get(
                    id=assignment.task_id
                )
                batch_ = assignment.batch
                update_consensus = consensus.should_update(
                    answers=answers,
                    overlap=overlap,
                    min_overlap=batch_.effective_min_overlap if batch_.is_dynamic_overlap else None,
                )
                if update_consensus:
                    Task.objects.filter(id=assignment.task_id).update(consensus_due=True)
            if assignment.gold_correct is not None:
                _after_score(assignment, worker=worker, now=now)
    # Raised after commit so an on-the-spot expiry is kept.
    if conflict is not None:
        raise conflict
    batch = assignment.batch
    _after_submit(
        assignment,
        review_mode=batch.review_mode,
        has_rules=assignment.has_rules,
        is_training=batch.is_training,
    )
    if update_consensus:
        consensus_drain_soon(batch_id=assignment.batch_id)
    return assignment


def _score(assignment: Assignment, *, worker: Worker, now: Any) -> None:
    """Score the answer against the task's known answer (never shown to the worker); a training
    batch keeps the task's explanation for a wrong answer."""
    batch = assignment.batch
    correct, score = gold_score(
        assignment.answer, assignment.task.gold_answer, batch.project.answer_comparison
    )
    assignment.gold_correct, assignment.gold_score = correct, score
    if batch.is_training and not correct:
        assignment.feedback = assignment.task.gold_explanation


def _after_score(assignment: Assignment, *, worker: Worker, now: Any) -> None:
    """In the submit's transaction: reliability (control tasks of regular batches) or training
    results."""
    batch = assignment.batch
    if batch.is_training:
        training_finish_if_done(worker_id=worker.pk, batch=batch, now=now)
        return
    reliability_bump(worker_id=worker.pk, project_id=batch.project_id, correct=bool(assignment.gold_correct))


def _end_lease(*, worker: Worker, assignment_id: int, status: AssignmentStatus) -> Assignment:
    now = timezone.now()
    with transaction.atomic():
        assignment = _lock_for_worker(worker=worker, assignment_id=assignment_id)
        conflict = _check_active(assignment, now)
        if conflict is None:
            assignment.status = status
            assignment.ended_at = now
            assignment.save(update_fields=["status", "ended_at"])
            events_add(
                [assignment.pk],
                from_status=AssignmentStatus.ACTIVE,
                to_status=status,
                actor=Actor.WORKER,
                actor_user_id=worker.user_id,
                now=now,
            )
            if not assignment.is_gold:
                slots_return([assignment.task_id])
    if conflict is not None:
        raise conflict
    if status == AssignmentStatus.SKIPPED and assignment.has_rules:
        rules_evaluate(worker_id=worker.pk, batch_id=assignment.batch_id)
    return assignment


def assignment_skip(*, worker: Worker, assignment_id: int) -> Assignment:
    """Decline the task: its slot goes back to the pool; this worker will not see it again."""
    return _end_lease(worker=worker, assignment_id=assignment_id, status=AssignmentStatus.SKIPPED)


def assignment_release(*, worker: Worker, assignment_id: int) -> Assignment:
    """Hand the lease back unanswered (not counted as a skip); the slot goes back to the pool."""
    return _end_lease(worker=worker, assignment_id=assignment_id, status=AssignmentStatus.RELEASED)
