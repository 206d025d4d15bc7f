"""A batch's results: streamed exports (JSON Lines, CSV), frozen snapshots, agreement metrics.

Exports walk the regular tasks and their answers with two server-side cursors in task order
(``iterator(chunk_size=...)``) and merge them, so memory stays flat however large the batch: a
million results are never held at once.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.fields import DateTimeField

from crowd import aggregation as agg
from crowd.enums import ANSWERED
from crowd.models import Assignment

from ..enums import SnapshotStatus
from ..errors import ApplicationError, Conflict
from ..models import Batch, BatchSnapshot, Task, User
from ..selectors import worker_pseudonym
from .consensus_model import canonical, is_numeric

CHUNK = 2000
FLUSH_BYTES = 64 * 1024
CSV_COLUMNS = [
    "task",
    "external_id",
    "input",
    "answer",
    "confidence",
    "answers_count",
    "method",
    "model_version",
]
_when = DateTimeField().to_representation


class SnapshotCorrupt(ApplicationError):
    status_code = 500
    default_code = "snapshot_corrupt"


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _result_rows(batch: Batch, *, with_answers: bool) -> Iterator[dict[str, Any]]:
    """One dict per regular task in id order; with ``with_answers``, its counted answers too."""
    tasks = (
        Task.objects.filter(batch=batch, is_gold=False)
        .order_by("id")
        .values_list(
            "id",
            "external_id",
            "input",
            "answers_count",
            "consensus__answer",
            "consensus__confidence",
            "consensus__answers_count",
            "consensus__method",
            "consensus__model_version",
        )
        .iterator(chunk_size=CHUNK)
    )
    answers: Iterator[tuple[Any, ...]] = iter(())
    if with_answers:
        answers = (
            Assignment.objects.filter(batch=batch, is_gold=False, status__in=ANSWERED)
            .order_by("task_id", "id")
            .values_list("task_id", "worker_id", "answer", "submitted_at", "status")
            .iterator(chunk_size=CHUNK)
        )
    pseudonyms: dict[int, str] = {}
    requester_id = batch.project.requester_id
    pending = next(answers, None)
    for task_id, external_id, task_input, count, answer, confidence, c_count, method, version in tasks:
        row: dict[str, Any] = {
            "task": task_id,
            "external_id": external_id,
            "input": task_input,
            "answer": answer,
            "confidence": confidence,
            "answers_count": count if c_count is None else c_count,
            "method": method,
            "model_version": version,
        }
        if with_answers:
            given = []
            while pending is not None and pending[0] <= task_id:
                if pending[0] == task_id:
                    worker_id = pending[1]
                    if worker_id not in pseudonyms:
                        pseudonyms[worker_id] = worker_pseudonym(
                            requester_id=requester_id, worker_id=worker_id
                        )
                    given.append(
                        {
                            "worker": pseudonyms[worker_id],
                            "answer": pending[2],
                            "submitted_at": _when(pending[3]) if pending[3] else None,
                            "status": pending[4],
                        }
                    )
                pending = next(answers, None)
            row["answers"] = given
        yield row


def _chunked(lines: Iterator[str]) -> Iterator[bytes]:
    buffer: list[str] = []
    size = 0
    for line in lines:
        buffer.append(line)
        size += len(line)
        if size >= FLUSH_BYTES:
            yield "".join(buffer).encode()
            buffer, size = [], 0
    if buffer:
        yield "".join(buffer).encode()


def results_jsonl(batch: Batch) -> Iterator[bytes]:
    """The batch's results as JSON Lines: one object per regular task, with its answers."""
    return _chunked(_dumps(row) + "\n" for row in _result_rows(batch, with_answers=True))


def results_csv(batch: Batch) -> Iterator[bytes]:
    """The batch's results as CSV (no individual answers); ``input`` and ``answer`` as JSON."""

    def lines() -> Iterator[str]:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for row in _result_rows(batch, with_answers=False):
            row["input"] = _dumps(row["input"])
            row["answer"] = "" if row["answer"] is None else _dumps(row["answer"])
            writer.writerow(["" if row[c] is None else row[c] for c in CSV_COLUMNS])
            yield out.getvalue()
            out.seek(0)
            out.truncate()
        yield out.getvalue()

    return _chunked(lines())


# --- snapshots -----------------------------------------------------------------------------------


def _snapshot_dir() -> Path:
    path = Path(settings.MEDIA_ROOT) / "snapshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


def snapshot_request(*, batch: Batch, user: User | None) -> BatchSnapshot:
    """Record a ``pending`` snapshot of the batch's results and have ``batch_snapshot_task`` write it
    after commit (a large batch takes minutes, more than a request should). Eager Celery (the demo,
    tests) writes it before this returns; the returned row is re-read either way."""
    from ..tasks import batch_snapshot_task

    with transaction.atomic():
        snapshot = BatchSnapshot.objects.create(batch=batch, created_by=user, created_at=timezone.now())
        transaction.on_commit(lambda: batch_snapshot_task.delay(snapshot.pk))
    return BatchSnapshot.objects.get(pk=snapshot.pk)


def snapshot_write(*, snapshot_id: int) -> BatchSnapshot:
    """Freeze the batch's current results (JSON Lines, with answers) into a new read-only file and
    complete the pending snapshot; a snapshot already ready or failed is returned unchanged.

    The file is written under a temporary name while its SHA-256 is computed, then renamed into
    place (a fresh name per attempt) and made read-only; one conditional update from ``pending``
    records the checksum, counts, method and parameters, so of two attempts racing (a retried task)
    one wins and the loser removes its file. On PostgreSQL outside a transaction, tasks and answers
    are read in one REPEATABLE READ snapshot so the two cursors agree.
    """
    snapshot = BatchSnapshot.objects.get(pk=snapshot_id)
    if snapshot.status != SnapshotStatus.PENDING:
        return snapshot
    directory = _snapshot_dir()
    name = f"batch-{snapshot.batch_id}-{snapshot.pk}-{uuid.uuid4().hex}.jsonl"
    tmp = directory / f".{name}.tmp"
    digest = hashlib.sha256()
    size = tasks_count = answers_count = 0
    repeatable = connection.vendor == "postgresql" and not connection.in_atomic_block
    try:
        with transaction.atomic():
            if repeatable:
                with connection.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            fresh = Batch.objects.select_related("project").get(pk=snapshot.batch_id)
            with open(tmp, "wb") as out:
                for row in _result_rows(fresh, with_answers=True):
                    data = (_dumps(row) + "\n").encode()
                    out.write(data)
                    digest.update(data)
                    size += len(data)
                    tasks_count += 1
                    answers_count += len(row["answers"])
                out.flush()
                os.fsync(out.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    final = directory / name
    os.replace(tmp, final)
    os.chmod(final, 0o444)
    done = BatchSnapshot.objects.filter(pk=snapshot.pk, status=SnapshotStatus.PENDING).update(
        status=SnapshotStatus.READY,
        path=str(final.relative_to(Path(settings.MEDIA_ROOT))),
        sha256=digest.hexdigest(),
        size_bytes=size,
        tasks_count=tasks_count,
        answers_count=answers_count,
        method=fresh.aggregation_method,
        model_version=fresh.consensus_version,
        parameters={
            "format": "jsonl",
            "aggregation_method": fresh.aggregation_method,
            "overlap": fresh.overlap,
            "min_overlap": fresh.min_overlap,
            "max_overlap": fresh.max_overlap,
            "target_confidence": fresh.target_confidence,
            "consensus_version": fresh.consensus_version,
        },
        completed_at=timezone.now(),
    )
    if not done:  # another attempt completed it first: its file is the snapshot
        final.unlink(missing_ok=True)
    return BatchSnapshot.objects.get(pk=snapshot.pk)


def snapshot_fail(*, snapshot_id: int, error: str) -> None:
    """Mark a pending snapshot failed (its task gave up); a completed one is left alone."""
    BatchSnapshot.objects.filter(pk=snapshot_id, status=SnapshotStatus.PENDING).update(
        status=SnapshotStatus.FAILED, error=error[:500], completed_at=timezone.now()
    )


def snapshot_path_verified(snapshot: BatchSnapshot) -> Path:
    """The snapshot's file after checking its SHA-256 (read in chunks); 409 while it is not ready,
    500 ``snapshot_corrupt`` if it is missing or does not match what was recorded."""
    if snapshot.status == SnapshotStatus.PENDING:
        raise Conflict("The snapshot is still being written; try again shortly.", code="snapshot_pending")
    if snapshot.status == SnapshotStatus.FAILED:
        raise Conflict(f"The snapshot could not be written: {snapshot.error}", code="snapshot_failed")
    path = Path(settings.MEDIA_ROOT) / snapshot.path
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError as exc:
        raise SnapshotCorrupt("The snapshot file is missing.") from exc
    if digest.hexdigest() != snapshot.sha256:
        raise SnapshotCorrupt("The snapshot file does not match its checksum.")
    return path


# --- agreement -----------------------------------------------------------------------------------


def _num(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 6)


def batch_agreement(*, batch: Batch, min_shared: int = 10) -> dict[str, Any]:
    """Krippendorff's alpha (nominal; also interval for numeric projects), Fleiss' kappa, and per
    worker (under the requester's pseudonym) the mean pairwise Cohen's kappa over the workers they
    share at least ``min_shared`` tasks with. Counted answers of regular tasks only; a statistic
    that is undefined (too few answers, a single class) is null."""
    rows = list(
        Assignment.objects.filter(batch=batch, is_gold=False, status__in=ANSWERED)
        .order_by("id")
        .values_list("task_id", "worker_id", "answer")
        .iterator(chunk_size=CHUNK)
    )
    body: dict[str, Any] = {
        "answers": len(rows),
        "tasks": 0,
        "workers": 0,
        "krippendorff_alpha": None,
        "krippendorff_alpha_interval": None,
        "fleiss_kappa": None,
        "min_shared_tasks": min_shared,
        "per_worker": [],
    }
    if not rows:
        return body
    enc = agg.encode(
        np.asarray([r[0] for r in rows]),
        np.asarray([r[1] for r in rows]),
        np.asarray([canonical(r[2]) for r in rows], dtype=object),
    )
    body["tasks"], body["workers"] = enc.n_tasks, enc.n_workers
    body["krippendorff_alpha"] = _num(agg.krippendorff_alpha(enc.task_idx, enc.label))
    if is_numeric(batch.project):
        try:
            values = np.asarray([float(r[2]) for r in rows])
            body["krippendorff_alpha_interval"] = _num(
                agg.krippendorff_alpha(enc.task_idx, values, level="interval")
            )
        except (TypeError, ValueError):
            pass
    body["fleiss_kappa"] = _num(agg.fleiss_kappa(enc.task_idx, enc.label, n_classes=enc.n_classes))
    pairs = agg.pairwise_cohen_kappa(
        enc.task_idx, enc.worker_idx, enc.label, min_shared=min_shared, n_workers=enc.n_workers
    )
    n_pairs = np.bincount(np.concatenate([pairs.worker_a, pairs.worker_b]), minlength=enc.n_workers)
    n_answers = np.bincount(enc.worker_idx, minlength=enc.n_workers)
    requester_id = batch.project.requester_id
    per_worker = [
        {
            "worker": worker_pseudonym(requester_id=requester_id, worker_id=int(w)),
            "answers": int(n_answers[i]),
            "pairs": int(n_pairs[i]),
            "mean_kappa": _num(pairs.worker_mean[i]),
        }
        for i, w in enumerate(enc.workers)
    ]
    body["per_worker"] = sorted(per_worker, key=lambda r: r["worker"])
    return body
