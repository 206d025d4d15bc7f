"""Consensus: one answer per task with its confidence, and dynamic overlap.

Two ways a ``TaskConsensus`` row is written:

- ``task_consensus_update``: at once, when a submit brings a task to its overlap (or, with dynamic
  overlap, to ``min_overlap``), from that task's answers and the workers' current gold-based
  reliability (``crowd.quality.reliability``). Dawid-Skene batches use the one-coin model with each
  worker's reliability as their accuracy (one E-step: ``posteriors_from_model``); the row gets
  ``model_version = 0``. With dynamic overlap the same call decides whether the task stops or gets
  one more slot.
- ``batch_refit``: the batch's method over all of its answers (Dawid-Skene: full EM, gold tasks
  clamped), rows upserted in one short transaction with the next ``model_version``. Idempotent: an
  input identical to the last fit's (same answers, same method, same weights) writes nothing.

Heavy work (loading answers, fitting) runs outside any transaction and lock; only the writes hold
the batch row (CVAT's split). Categorical answers are compared as canonical JSON, so any JSON answer
is a class; projects compared ``numeric`` use the reliability-weighted median instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from crowd import aggregation as agg
from crowd.enums import ANSWERED, AssignmentStatus
from crowd.models import Assignment, Reliability
from crowd.quality.reliability import estimate

from ..enums import AggregationMethod, AnswerComparison, BatchStatus, TaskStatus
from ..models import Batch, Project, Task, TaskConsensus

logger = logging.getLogger(__name__)

# Stands in for a second class when only one is known: no canonical JSON is the empty string.
PHANTOM = ""
CHUNK = 2000


def canonical(answer: Any) -> str:
    """The class of a categorical answer: its JSON with sorted keys (hashable and stable)."""
    return json.dumps(answer, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _schema_labels(project: Project) -> list[str]:
    enum = (project.answer_schema or {}).get("enum")
    return [canonical(v) for v in enum] if isinstance(enum, list) else []


def is_numeric(project: Project) -> bool:
    return project.comparison_kind == AnswerComparison.NUMERIC


def _reliability(project_id: int, worker_ids: Iterable[int]) -> dict[int, float]:
    """Posterior-mean gold accuracy on the project per worker (the Beta prior for newcomers)."""
    ids = set(worker_ids)
    found = {
        r.worker_id: estimate(r.gold_correct, r.gold_total).mean
        for r in Reliability.objects.filter(project_id=project_id, worker_id__in=ids)
    }
    prior = estimate(0, 0).mean
    return {w: found.get(w, prior) for w in ids}


@dataclass(frozen=True)
class Outcome:
    answer: Any
    confidence: float
    answers_count: int


def _aggregate(
    *,
    method: str,
    numeric: bool,
    rows: Sequence[tuple[int, int, Any]],
    gold: dict[int, Any],
    reliability: dict[int, float],
    label_hint: Sequence[str],
    full_fit: bool,
) -> tuple[dict[int, Outcome], list[str]]:
    """Consensus per task id from ``(task, worker, answer)`` rows. Returns it and the class labels.

    ``gold`` (task id → known answer) clamps those tasks; they train Dawid-Skene's confusion
    matrices. ``full_fit`` False is the instant estimate (one-coin model from ``reliability``).
    """
    tasks = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    workers = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
    if numeric:
        values = np.asarray([float(r[2]) for r in rows])
        enc = agg.encode(tasks, workers, np.zeros(len(rows), dtype=np.intp))
        weights = None
        if method != AggregationMethod.MAJORITY:
            weights = np.asarray([reliability.get(int(w), 0.0) for w in enc.workers])
        pos = {int(t): i for i, t in enumerate(enc.tasks)}
        num = agg.weighted_median(
            enc.task_idx,
            enc.worker_idx,
            values,
            weights,
            gold={pos[t]: float(v) for t, v in gold.items() if t in pos},
        )
        out = {
            int(t): Outcome(float(num.values[i]), float(num.confidence[i]), int(num.n_answers[i]))
            for i, t in enumerate(enc.tasks)
        }
        return out, []
    labels = [canonical(r[2]) for r in rows]
    gold_labels = {t: canonical(v) for t, v in gold.items()}
    values = sorted(set(labels) | set(label_hint) | set(gold_labels.values()))
    if len(values) < 2:
        values = sorted({*values, PHANTOM})
    enc = agg.encode(tasks, workers, np.asarray(labels, dtype=object), label_values=values)
    k = enc.n_classes
    g = enc.encode_gold(gold_labels) if gold_labels else None
    accuracy = np.asarray([reliability.get(int(w), 0.0) for w in enc.workers])
    codes = (enc.task_idx, enc.worker_idx, enc.label)
    if method == AggregationMethod.MAJORITY:
        res = agg.majority_vote(*codes, gold=g, n_classes=k)
        label_codes, conf = res.labels, res.confidence
    elif method == AggregationMethod.WEIGHTED:
        res = agg.weighted_vote(*codes, agg.accuracy_to_weights(accuracy, k), gold=g, n_classes=k)
        label_codes, conf = res.labels, res.confidence
    elif full_fit:
        res = agg.dawid_skene(*codes, gold=g, n_classes=k)
        label_codes, conf = res.labels, res.confidence
    else:
        p = np.clip(accuracy, 1e-3, 1 - 1e-3)[:, None, None]
        eye = np.eye(k, dtype=bool)[None]
        confusion = np.where(eye, p, (1 - p) / (k - 1))
        post = agg.posteriors_from_model(*codes, confusion, np.full(k, 1.0 / k), n_tasks=enc.n_tasks)
        label_codes, conf = post.argmax(axis=1), post.max(axis=1)
    n_answers = np.bincount(enc.task_idx, minlength=enc.n_tasks)
    out = {}
    for i, t in enumerate(enc.tasks):
        code = int(label_codes[i])
        label = enc.labels[code] if code >= 0 else PHANTOM
        answer = None if label == PHANTOM else json.loads(label)
        out[int(t)] = Outcome(answer, round(float(conf[i]), 6), int(n_answers[i]))
    return out, [v for v in values if v != PHANTOM]


# --- instant consensus and dynamic overlap ------------------------------------------------------


def task_consensus_update(*, task_id: int) -> TaskConsensus | None:
    """Compute a regular task's consensus from its answers now, and apply dynamic overlap.

    Locks the task row, so two submits finishing the same task decide one after the other, each
    from the counters the other left (a re-run with the same answers changes nothing). Dynamic
    overlap, once the task has ``min_overlap`` answers: confidence ≥ target → the task takes no new
    slots (overlap shrinks to the slots already taken; leases still out may finish); below the target
    with every slot answered → one more slot, up to ``max_overlap``. When this leaves the batch with
    no open task, a full re-fit is enqueued after commit. Returns the row, or None (gold task, no
    answers).
    """
    with transaction.atomic():
        task = Task.objects.select_for_update(of=("self",)).select_related("batch__project").get(pk=task_id)
        batch = task.batch
        if task.is_gold:
            return None
        rows = list(
            Assignment.objects.filter(task_id=task_id, status__in=ANSWERED)
            .order_by("id")
            .values_list("task_id", "worker_id", "answer")
        )
        if not rows:
            TaskConsensus.objects.filter(task_id=task_id).delete()
            return None
        outcomes, _ = _aggregate(
            method=batch.aggregation_method,
            numeric=is_numeric(batch.project),
            rows=rows,
            gold={},
            reliability=_reliability(batch.project_id, (r[1] for r in rows)),
            label_hint=_schema_labels(batch.project) or batch.consensus_labels,
            full_fit=False,
        )
        outcome = outcomes[task_id]
        row, _ = TaskConsensus.objects.update_or_create(
            task_id=task_id,
            defaults={
                "batch_id": batch.pk,
                "answer": outcome.answer,
                "confidence": outcome.confidence,
                "answers_count": outcome.answers_count,
                "method": batch.aggregation_method,
                "model_version": 0,
                "updated_at": timezone.now(),
            },
        )
        if batch.is_dynamic_overlap:
            _overlap_decide(task, batch, outcome.confidence)
        if task.status == TaskStatus.COMPLETE and not (
            Task.objects.filter(batch_id=batch.pk, is_gold=False, status=TaskStatus.OPEN).exists()
        ):
            transaction.on_commit(lambda: refit_later(batch_id=batch.pk))
    return row


def _overlap_decide(task: Task, batch: Batch, confidence: float) -> None:
    """Stop or grow one row-locked task (see ``task_consensus_update``); keeps ``slots_taken <=
    overlap`` and ``status`` (complete iff ``answers_count >= overlap``) exact."""
    answers = task.answers_count
    if answers < batch.effective_min_overlap:
        return
    assert batch.target_confidence is not None and batch.max_overlap is not None
    if confidence >= batch.target_confidence:
        overlap = max(task.slots_taken, answers)
    elif answers >= task.overlap and task.overlap < batch.max_overlap:
        overlap = task.overlap + 1
    else:
        return
    status = TaskStatus.COMPLETE if answers >= overlap else TaskStatus.OPEN
    if (overlap, status) != (task.overlap, task.status):
        task.overlap, task.status = overlap, status
        task.save(update_fields=["overlap", "status"])


def should_update(*, answers: int, overlap: int, min_overlap: int | None) -> bool:
    """Whether a submit that left a task at ``answers``/``overlap`` calls ``task_consensus_update``:
    the task just reached its overlap, or (dynamic overlap, ``min_overlap`` given) its minimum."""
    return answers >= overlap or (min_overlap is not None and answers >= min_overlap)


def after_submit(*, task_id: int) -> None:
    """The submit path's hook, after its commit: hand the task's consensus to Celery (a worker
    process when ``REDIS_URL`` is set; in-process, eagerly, otherwise). A failure here must not fail
    the worker's (already recorded) submit: it is logged and left to the periodic re-fit."""
    from ..tasks import task_consensus_task

    try:
        task_consensus_task.delay(task_id)
    except Exception:
        logger.exception("could not enqueue the consensus of task %s", task_id)


def task_consensus_update_logged(*, task_id: int) -> None:
    """``task_consensus_update``, logging instead of raising (the Celery task's body)."""
    try:
        task_consensus_update(task_id=task_id)
    except Exception:
        logger.exception("consensus update failed for task %s", task_id)


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
    reliability = _reliability(project.pk, (r[2] for r in answers)) if weighted else {}
    gold = dict(
        Task.objects.filter(batch_id=batch_id, is_gold=True, gold_answer__isnull=False).values_list(
            "id", "gold_answer"
        )
    )
    hint = _schema_labels(project)
    fingerprint = _fingerprint(method, answers, [sorted(reliability.items()), hint, sorted(gold.items())])
    if fingerprint == batch.consensus_fingerprint:
        Batch.objects.filter(pk=batch_id, consensus_fingerprint=fingerprint).update(consensus_read_at=read_at)
        return batch.consensus_version
    outcomes: dict[int, Outcome] = {}
    labels: list[str] = []
    if regular:
        outcomes, labels = _aggregate(
            method=method,
            numeric=numeric,
            rows=[(r[1], r[2], r[3]) for r in answers],
            gold={t: v for t, v in gold.items() if v is not None},
            reliability=reliability,
            label_hint=hint,
            full_fit=True,
        )
    regular_tasks = {r[1] for r in regular}
    return _refit_write(batch_id, read_at, fingerprint, method, outcomes, regular_tasks, labels)


def _refit_write(
    batch_id: int,
    read_at: datetime,
    fingerprint: str,
    method: str,
    outcomes: dict[int, Outcome],
    regular_tasks: set[int],
    labels: list[str],
) -> int:
    with transaction.atomic():
        locked = Batch.objects.select_for_update(no_key=True).get(pk=batch_id)
        if locked.consensus_fingerprint == fingerprint or (
            locked.consensus_read_at is not None and locked.consensus_read_at > read_at
        ):
            return locked.consensus_version
        version = locked.consensus_version + 1
        now = timezone.now()
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
                for task_id, o in outcomes.items()
                if task_id in regular_tasks
            ],
            update_conflicts=True,
            unique_fields=["task"],
            update_fields=["answer", "confidence", "answers_count", "method", "model_version", "updated_at"],
            batch_size=CHUNK,
        )
        # Rows not rewritten belong to tasks whose answers were all rejected since; a row written
        # instantly after this fit's read is newer than the fit and stays.
        TaskConsensus.objects.filter(
            batch_id=batch_id, model_version__lt=version, updated_at__lt=read_at
        ).delete()
        Batch.objects.filter(pk=batch_id).update(
            consensus_version=version,
            consensus_read_at=read_at,
            consensus_fingerprint=fingerprint,
            consensus_labels=labels,
        )
    return version


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
