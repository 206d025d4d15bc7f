"""Consensus: one answer per task with its confidence, and dynamic overlap.

Two ways a ``TaskConsensus`` row is written:

- ``task_consensus_update``: at once, in the request of the submit that brings a task to its
  overlap (or, with dynamic overlap, to ``min_overlap``), from that task's answers and the current
  worker estimates; the row gets ``model_version = 0``. Dawid-Skene batches run one E-step
  (``posteriors_from_model``): each answering worker counts with the one-coin model, their
  gold-based reliability (``crowd.quality.reliability``) as accuracy, updated by the expected
  confusion counts the batch's last re-fit found for them (``crowd.WorkerConfusion``; see
  ``consensus_model.instant_model``), with that fit's class shares as priors. With dynamic overlap the same
  call decides whether the task stops or gets one more slot.
- ``batch_refit``: the batch's method over all of its answers (Dawid-Skene: full EM, gold tasks
  clamped), rows upserted in one short transaction with the next ``model_version``, together with
  the workers' expected confusion counts. With dynamic overlap, that transaction re-applies the
  stop/grow rule with the re-fit's confidences to tasks whose answers the fit saw (a task the fit
  now finds sure stops; one it now doubts gets a slot, up to ``max_overlap``) while the batch is
  open or paused. Idempotent: an input identical to the last fit's (same answers, same method, same
  weights) writes nothing.

Heavy work (loading answers, fitting) runs outside any transaction and lock; the writes take the
batch row only for their last step (CVAT's split). Categorical answers are compared as canonical
JSON, so any JSON answer is a class; projects compared ``numeric`` use the reliability-weighted
median instead (``consensus_model`` holds that side, without the database writes).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from crowd.enums import ANSWERED, AssignmentStatus
from crowd.models import Assignment, WorkerConfusion
from crowd.quality.reliability import posterior_mean

from ..enums import AggregationMethod, BatchStatus, TaskStatus
from ..models import Batch, Project, Task, TaskConsensus
from ..schemas import json_column
from .consensus_model import (
    FittedModel,
    Outcome,
    aggregate,
    canonical,
    is_numeric,
    reliability_for,
    schema_labels,
)

logger = logging.getLogger(__name__)

CHUNK = 2000


# --- instant consensus and dynamic overlap ------------------------------------------------------


def task_consensus_update(*, task_id: int, refit_when_done: bool = True) -> TaskConsensus | None:
    """Compute a regular task's consensus from its answers now, and apply dynamic overlap.

    Locks the task row, so two submits finishing the same task decide one after the other, each
    from the counters the other left (a re-run with the same answers changes nothing). Dynamic
    overlap, once the task has ``min_overlap`` answers: confidence ≥ target → the task takes no new
    slots (overlap shrinks to the slots already taken; leases still out may finish); below the target
    with every slot answered → one more slot, up to ``max_overlap``. When this leaves the batch with
    no open task, a full re-fit is enqueued after commit (unless ``refit_when_done`` is off:
    ``consensus_drain`` asks once for all its tasks). Returns the row, or None (gold task, no
    answers).

    It runs for every task that completes, so on PostgreSQL the reads are one hand-written
    statement and the write one upsert (``_task_consensus_pg``); elsewhere the ORM does the same.
    Inside a caller's transaction (``consensus_drain``) it takes no savepoint of its own: a failure
    undoes the caller's whole transaction, which is retried.
    """
    with transaction.atomic(savepoint=False):
        loaded = _task_load_pg(task_id) if connection.vendor == "postgresql" else _task_load_orm(task_id)
        if loaded is None:
            return None
        task, rows, reliability, model = loaded
        batch = task.batch
        if not rows:
            TaskConsensus.objects.filter(task_id=task_id).delete()
            return None
        outcomes, _ = aggregate(
            method=batch.aggregation_method,
            numeric=is_numeric(batch.project),
            rows=rows,
            gold={},
            reliability=reliability,
            label_hint=schema_labels(batch.project) or batch.consensus_labels,
            full_fit=False,
            model=model,
        )
        outcome = outcomes[task_id]
        row = TaskConsensus(
            task_id=task_id,
            batch_id=batch.pk,
            answer=outcome.answer,
            confidence=outcome.confidence,
            answers_count=outcome.answers_count,
            method=batch.aggregation_method,
            model_version=0,
            updated_at=timezone.now(),
        )
        _consensus_upsert(row)
        if batch.is_dynamic_overlap:
            _overlap_decide(task, batch, outcome.confidence)
        if refit_when_done and task.status == TaskStatus.COMPLETE and not _batch_has_open_task(batch.pk):
            transaction.on_commit(lambda: refit_later(batch_id=batch.pk))
    return row


# Task, batch and project fields the consensus needs, and the task's counted answers with each
# answering worker's gold counts on the project and confusion counts from the batch's last re-fit,
# in one round trip under the task's row lock.
_TASK_LOAD_SQL = f"""
SELECT t.is_gold, t.status, t.overlap, t.slots_taken, t.answers_count,
       b.id, b.aggregation_method, b.consensus_labels, b.overlap, b.min_overlap, b.max_overlap,
       b.target_confidence, p.id, p.answer_schema, p.answer_comparison, b.consensus_class_counts,
       (SELECT json_agg(json_build_array(a.worker_id, a.answer, r.gold_correct, r.gold_total, c.counts)
                        ORDER BY a.id)
        FROM crowd_assignment a
        LEFT JOIN crowd_reliability r ON r.worker_id = a.worker_id AND r.project_id = b.project_id
        LEFT JOIN crowd_workerconfusion c ON c.batch_id = b.id AND c.worker_id = a.worker_id
        WHERE a.task_id = t.id AND a.status IN ({", ".join(f"'{s}'" for s in ANSWERED)}))
FROM marketplace_task t
JOIN marketplace_batch b ON b.id = t.batch_id
JOIN marketplace_project p ON p.id = b.project_id
WHERE t.id = %(task)s
FOR UPDATE OF t
"""


Loaded = tuple[Task, list[tuple[int, int, Any]], dict[int, float], FittedModel | None]


def _fitted_model(batch: Batch, worker_counts: dict[int, list[list[float]]]) -> FittedModel | None:
    """The last Dawid-Skene re-fit's model as the instant estimate needs it (None before any)."""
    if batch.aggregation_method != AggregationMethod.DAWID_SKENE or not batch.consensus_class_counts:
        return None
    return FittedModel(list(batch.consensus_labels), list(batch.consensus_class_counts), worker_counts)


def _task_load_pg(task_id: int) -> Loaded | None:
    with connection.cursor() as cursor:
        cursor.execute(_TASK_LOAD_SQL, {"task": task_id})
        found = cursor.fetchone()
    if found is None:
        raise Task.DoesNotExist(f"Task {task_id} does not exist.")
    (is_gold, status, overlap, slots_taken, answers_count, batch_id, method, labels, batch_overlap) = found[
        :9
    ]
    (min_overlap, max_overlap, target, project_id, answer_schema, comparison, class_counts, answers) = found[
        9:
    ]
    if is_gold:
        return None
    project = Project(
        id=project_id, answer_schema=json_column(answer_schema), answer_comparison=json_column(comparison)
    )
    batch = Batch(
        id=batch_id,
        project=project,
        aggregation_method=method,
        consensus_labels=json_column(labels),
        overlap=batch_overlap,
        min_overlap=min_overlap,
        max_overlap=max_overlap,
        target_confidence=target,
        consensus_class_counts=json_column(class_counts),
    )
    task = Task(
        id=task_id,
        batch=batch,
        is_gold=False,
        status=status,
        overlap=overlap,
        slots_taken=slots_taken,
        answers_count=answers_count,
    )
    rows, reliability, worker_counts = [], {}, {}
    for worker_id, answer, correct, total, counts in json_column(answers) or []:
        rows.append((task_id, worker_id, answer))
        reliability[worker_id] = posterior_mean(correct or 0, total or 0)
        if counts is not None:
            worker_counts[worker_id] = counts
    return task, rows, reliability, _fitted_model(batch, worker_counts)


def _task_load_orm(task_id: int) -> Loaded | None:
    task = Task.objects.select_for_update(of=("self",)).select_related("batch__project").get(pk=task_id)
    if task.is_gold:
        return None
    rows = list(
        Assignment.objects.filter(task_id=task_id, status__in=ANSWERED)
        .order_by("id")
        .values_list("task_id", "worker_id", "answer")
    )
    workers = {r[1] for r in rows}
    worker_counts = dict(
        WorkerConfusion.objects.filter(batch_id=task.batch_id, worker_id__in=workers).values_list(
            "worker_id", "counts"
        )
    )
    return (
        task,
        rows,
        reliability_for(task.batch.project_id, workers),
        _fitted_model(task.batch, worker_counts),
    )


def _consensus_upsert(row: TaskConsensus) -> None:
    if connection.vendor != "postgresql":
        values = {f.attname: getattr(row, f.attname) for f in TaskConsensus._meta.concrete_fields}
        del values["task_id"]
        TaskConsensus.objects.update_or_create(task_id=row.task_id, defaults=values)
        return
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO marketplace_taskconsensus
                (task_id, batch_id, answer, confidence, answers_count, method, model_version, updated_at)
            VALUES (%(task)s, %(batch)s, %(answer)s::jsonb, %(confidence)s, %(answers)s, %(method)s, 0,
                    %(now)s)
            ON CONFLICT (task_id) DO UPDATE SET
                batch_id = EXCLUDED.batch_id, answer = EXCLUDED.answer, confidence = EXCLUDED.confidence,
                answers_count = EXCLUDED.answers_count, method = EXCLUDED.method, model_version = 0,
                updated_at = EXCLUDED.updated_at
            """,
            {
                "task": row.task_id,
                "batch": row.batch_id,
                "answer": json.dumps(row.answer),
                "confidence": row.confidence,
                "answers": row.answers_count,
                "method": row.method,
                "now": row.updated_at,
            },
        )


def _batch_has_open_task(batch_id: int) -> bool:
    if connection.vendor != "postgresql":
        return Task.objects.filter(batch_id=batch_id, is_gold=False, status=TaskStatus.OPEN).exists()
    with connection.cursor() as cursor:  # the partial index ``task_open_regular`` answers it
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM marketplace_task"
            " WHERE batch_id = %s AND NOT is_gold AND status = 'open')",
            [batch_id],
        )
        return cursor.fetchone()[0]


def _overlap_rule(task: Task, batch: Batch, confidence: float) -> bool:
    """The dynamic-overlap rule on one task's counters: stop (no new slots) at the target, else one
    more slot once every slot is answered, up to ``max_overlap``. Sets ``overlap`` and ``status``
    (complete iff ``answers_count >= overlap``, and ``slots_taken <= overlap`` holds) and returns
    whether they changed; the caller holds the task's row lock and saves."""
    answers = task.answers_count
    if answers < batch.effective_min_overlap:
        return False
    assert batch.target_confidence is not None and batch.max_overlap is not None
    if confidence >= batch.target_confidence:
        overlap = max(task.slots_taken, answers)
    elif answers >= task.overlap and task.overlap < batch.max_overlap:
        overlap = task.overlap + 1
    else:
        return False
    status = TaskStatus.COMPLETE if answers >= overlap else TaskStatus.OPEN
    if (overlap, status) == (task.overlap, task.status):
        return False
    task.overlap, task.status = overlap, status
    return True


def _overlap_decide(task: Task, batch: Batch, confidence: float) -> None:
    """Stop or grow one row-locked task (see ``task_consensus_update``)."""
    if _overlap_rule(task, batch, confidence):
        task.save(update_fields=["overlap", "status"])


def _overlap_after_refit(batch: Batch, outcomes: dict[int, Outcome]) -> int:
    """Re-apply the stop/grow rule with a re-fit's confidences (inside its write transaction, the
    batch row locked); returns how many tasks changed.

    Only tasks whose answers are exactly those the fit saw: a task answered since has had (or is
    having) its instant decision from fresher data. A first read without locks picks the tasks whose
    counters would change; those are then locked with SKIP LOCKED (a task locked now is in a submit,
    which decides for itself) and the rule re-run on the locked counters.
    """
    if not batch.is_dynamic_overlap or batch.status not in (BatchStatus.OPEN, BatchStatus.PAUSED):
        return 0
    fields = ("id", "overlap", "slots_taken", "answers_count", "status")

    def changed(tasks: Iterable[Task]) -> list[Task]:
        return [
            t
            for t in tasks
            if t.pk in outcomes
            and outcomes[t.pk].answers_count == t.answers_count
            and _overlap_rule(t, batch, outcomes[t.pk].confidence)
        ]

    regular = Task.objects.filter(
        batch_id=batch.pk, is_gold=False, answers_count__gte=batch.effective_min_overlap
    )
    candidates = [t.pk for t in changed(regular.only(*fields).iterator(chunk_size=CHUNK))]
    done = 0
    for start in range(0, len(candidates), CHUNK):
        locked = regular.filter(id__in=candidates[start : start + CHUNK]).select_for_update(skip_locked=True)
        dirty = changed(locked.only(*fields).order_by("id"))
        Task.objects.bulk_update(dirty, ["overlap", "status"])
        done += len(dirty)
    return done


def should_update(*, answers: int, overlap: int, min_overlap: int | None) -> bool:
    """Whether a submit that left a task at ``answers``/``overlap`` calls ``task_consensus_update``:
    the task just reached its overlap, or (dynamic overlap, ``min_overlap`` given) its minimum."""
    return answers >= overlap or (min_overlap is not None and answers >= min_overlap)


DRAIN_CHUNK = 20


def consensus_drain(*, batch_id: int) -> list[int]:
    """Compute the consensus of every task of the batch marked ``consensus_due`` (by the submit
    that gave it its answers), clearing the mark; returns the tasks done, in order.

    Up to ``DRAIN_CHUNK`` tasks at a time, each chunk in one short transaction that holds the
    tasks' row locks from picking them (``SKIP LOCKED``: concurrent drains share the work instead
    of repeating it) through clearing their marks, so a submit that answers one of them meanwhile
    waits (a few milliseconds) and marks it again for the next drain. Safe to run at any time and
    twice.
    """
    done: list[int] = []
    due = Task.objects.filter(batch_id=batch_id, consensus_due=True).order_by("id")
    while True:
        with transaction.atomic():
            chunk = list(due.select_for_update(skip_locked=True).values_list("id", flat=True)[:DRAIN_CHUNK])
            if not chunk:
                break
            for task_id in chunk:
                task_consensus_update(task_id=task_id, refit_when_done=False)
            Task.objects.filter(id__in=chunk).update(consensus_due=False)
        done += chunk
    # Asked once, not per task: the last task of the batch got its answers → the full re-fit.
    if done and not _batch_has_open_task(batch_id):
        transaction.on_commit(lambda: refit_later(batch_id=batch_id))
    return done


def refit_later(*, batch_id: int) -> None:
    """Enqueue ``batch_refit_task`` (call after commit)."""
    from ..tasks import batch_refit_task

    batch_refit_task.delay(batch_id)


# --- full re-fit ---------------------------------------------------------------------------------


def _batch_answers(batch_id: int) -> list[tuple[int, int, int, Any, bool]]:
    """``(assignment, task, worker, answer, is_gold)`` in id order: regular answers that count, and
    every answer to a gold task (wrong ones included: they teach Dawid-Skene the worker's errors)."""
    return list(
        Assignment.objects.filter(batch_id=batch_id)
        .filter(
            Q(is_gold=False, status__in=ANSWERED)
            | Q(is_gold=True, status__in=[*ANSWERED, AssignmentStatus.REJECTED])
        )
        .order_by("id")
        .values_list("id", "task_id", "worker_id", "answer", "is_gold")
        .iterator(chunk_size=CHUNK)
    )


def _fingerprint(method: str, rows: Sequence[tuple[Any, ...]], extra: Any) -> str:
    digest = hashlib.sha256(method.encode())
    for r in rows:
        digest.update(f"{r[0]}:{r[1]}:{r[2]}:{canonical(r[3])}\n".encode())
    digest.update(canonical(extra).encode())
    return digest.hexdigest()


def batch_refit(*, batch_id: int) -> int:
    """Re-fit the batch's consensus over all its answers; returns the model version now current.

    Reads and fits outside any transaction, then in one short transaction under the batch's row
    lock upserts every regular task's row with ``model_version = previous + 1`` and removes rows of
    tasks left without answers. Idempotent: when the input (answers, method, weights, known labels)
    equals the last fit's, nothing is written; a fit older than the one already written is dropped.
    """
    read_at = timezone.now()
    batch = Batch.objects.select_related("project").get(pk=batch_id)
    project = batch.project
    answers = _batch_answers(batch_id)
    regular = [r for r in answers if not r[4]]
    method = batch.aggregation_method
    numeric = is_numeric(project)
    # Only these read the workers' reliability; a change in it must not re-fit the others.
    weighted = method == AggregationMethod.WEIGHTED or (numeric and method != AggregationMethod.MAJORITY)
    reliability = reliability_for(project.pk, (r[2] for r in answers)) if weighted else {}
    gold = dict(
        Task.objects.filter(batch_id=batch_id, is_gold=True, gold_answer__isnull=False).values_list(
            "id", "gold_answer"
        )
    )
    hint = schema_labels(project)
    fingerprint = _fingerprint(method, answers, [sorted(reliability.items()), hint, sorted(gold.items())])
    if fingerprint == batch.consensus_fingerprint:
        Batch.objects.filter(pk=batch_id, consensus_fingerprint=fingerprint).update(consensus_read_at=read_at)
        return batch.consensus_version
    outcomes: dict[int, Outcome] = {}
    model = FittedModel([], [], {})
    if regular:
        outcomes, model = aggregate(
            method=method,
            numeric=numeric,
            rows=[(r[1], r[2], r[3]) for r in answers],
            gold={t: v for t, v in gold.items() if v is not None},
            reliability=reliability,
            label_hint=hint,
            full_fit=True,
        )
    regular_tasks = {r[1] for r in regular}
    return _refit_write(batch_id, read_at, fingerprint, method, outcomes, regular_tasks, model)


# Namespace of the transaction-level advisory lock that serialises the writes of one batch's re-fits
# (the second key is the batch id), so the batch row itself is locked only at the very end.
_REFIT_LOCK = 0x43_4D_52_46  # "CMRF"


def _refit_write(
    batch_id: int,
    read_at: datetime,
    fingerprint: str,
    method: str,
    outcomes: dict[int, Outcome],
    regular_tasks: set[int],
    model: FittedModel,
) -> int:
    """Write a fit in one transaction. Two re-fits of a batch write one after the other (advisory
    lock on PostgreSQL); the batch row, which paying for accepted answers also locks, is locked
    only for the last step (the dynamic-overlap pass and the version bump), not while a large
    batch's rows are written."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_REFIT_LOCK, batch_id])
        current = Batch.objects.only("consensus_version", "consensus_read_at", "consensus_fingerprint").get(
            pk=batch_id
        )
        if current.consensus_fingerprint == fingerprint or (
            current.consensus_read_at is not None and current.consensus_read_at > read_at
        ):
            return current.consensus_version
        version = current.consensus_version + 1
        rows = [(task_id, o) for task_id, o in outcomes.items() if task_id in regular_tasks]
        _consensus_rows_write(batch_id, method, version, timezone.now(), rows)
        # Rows not rewritten belong to tasks whose answers were all rejected since; a row written
        # instantly after this fit's read is newer than the fit and stays.
        TaskConsensus.objects.filter(
            batch_id=batch_id, model_version__lt=version, updated_at__lt=read_at
        ).delete()
        WorkerConfusion.objects.filter(batch_id=batch_id).delete()
        WorkerConfusion.objects.bulk_create(
            [
                WorkerConfusion(batch_id=batch_id, worker_id=w, counts=c)
                for w, c in model.worker_counts.items()
            ],
            batch_size=CHUNK,
        )
        locked = Batch.objects.select_for_update(no_key=True).get(pk=batch_id)
        changed = _overlap_after_refit(locked, outcomes)
        Batch.objects.filter(pk=batch_id).update(
            consensus_version=version,
            consensus_read_at=read_at,
            consensus_fingerprint=fingerprint,
            consensus_labels=model.labels,
            consensus_class_counts=model.class_counts,
        )
    if changed:
        logger.info("re-fit %s of batch %s changed the overlap of %s tasks", version, batch_id, changed)
    return version


def _consensus_rows_write(
    batch_id: int, method: str, version: int, now: datetime, rows: list[tuple[int, Outcome]]
) -> None:
    """Upsert a fit's rows. On PostgreSQL they are streamed with COPY into a temporary table and
    upserted by one statement (200,000 rows in a few seconds; ``bulk_create`` took 20 s)."""
    if connection.vendor != "postgresql":
        TaskConsensus.objects.bulk_create(
            [
                TaskConsensus(
                    task_id=task_id,
                    batch_id=batch_id,
                    answer=o.answer,
                    confidence=o.confidence,
                    answers_count=o.answers_count,
                    method=method,
                    model_version=version,
                    updated_at=now,
                )
                for task_id, o in rows
            ],
            update_conflicts=True,
            unique_fields=["task"],
            update_fields=["answer", "confidence", "answers_count", "method", "model_version", "updated_at"],
            batch_size=CHUNK,
        )
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMPORARY TABLE refit_rows (task_id bigint, answer jsonb, confidence double precision,"
            " answers_count integer) ON COMMIT DROP"
        )
        with cursor.cursor.copy(
            "COPY refit_rows (task_id, answer, confidence, answers_count) FROM STDIN"
        ) as copy:
            for task_id, o in rows:
                answer = None if o.answer is None else json.dumps(o.answer)
                copy.write_row((task_id, answer, o.confidence, o.answers_count))
        cursor.execute(
            """
            INSERT INTO marketplace_taskconsensus
                (task_id, batch_id, answer, confidence, answers_count, method, model_version, updated_at)
            SELECT task_id, %(batch)s, answer, confidence, answers_count, %(method)s, %(version)s, %(now)s
            FROM refit_rows
            ON CONFLICT (task_id) DO UPDATE SET
                batch_id = EXCLUDED.batch_id, answer = EXCLUDED.answer, confidence = EXCLUDED.confidence,
                answers_count = EXCLUDED.answers_count, method = EXCLUDED.method,
                model_version = EXCLUDED.model_version, updated_at = EXCLUDED.updated_at
            """,
            {"batch": batch_id, "method": method, "version": version, "now": now},
        )
        cursor.execute("DROP TABLE refit_rows")  # now: this may run inside an outer transaction


def batches_due_for_refit() -> list[int]:
    """Open or paused batches with answers submitted or reviewed since their last fit's read."""
    since = OuterRef("consensus_read_at")
    news = Assignment.objects.filter(batch_id=OuterRef("pk")).filter(
        Q(submitted_at__gt=since) | Q(reviewed_at__gt=since)
    )
    first = Assignment.objects.filter(batch_id=OuterRef("pk"), submitted_at__isnull=False)
    return list(
        Batch.objects.filter(status__in=[BatchStatus.OPEN, BatchStatus.PAUSED])
        .alias(has_news=Exists(news), has_any=Exists(first))
        .filter(
            Q(consensus_read_at__isnull=False, has_news=True)
            | Q(consensus_read_at__isnull=True, has_any=True)
        )
        .order_by("id")
        .values_list("id", flat=True)
    )
