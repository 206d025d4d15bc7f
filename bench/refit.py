#!/usr/bin/env python
"""A whole-batch consensus re-fit at scale, end to end on PostgreSQL (issue 4).

Recreates ``crowdmarket_refit``, fills one Dawid-Skene batch in SQL with ``--tasks`` regular tasks
(4 classes), ``--overlap`` answers each from ``--workers`` workers (most right 85 % of the time, one
in ten a uniform spammer), then runs ``batch_refit`` (the Celery task's body) and prints where the
time goes: reading the answers, the fit, and the write transaction (which holds the batch row: the
figure behind "results in one short transaction"); then a re-run on unchanged answers (idempotent,
writes nothing) and the instant consensus of single tasks afterwards (one locked read with the
workers' fitted confusion counts, one E-step, one upsert), as a submit runs it.

    .venv/bin/python bench/refit.py --tasks 200000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchdb import django_setup, recreate_database, seed_batch

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/crowdmarket_refit"
LABELS = ("a", "b", "c", "d")

TASKS_SQL = """
INSERT INTO marketplace_task (batch_id, input, is_gold, status, overlap, slots_taken, answers_count,
                              created_at, external_id, gold_explanation)
SELECT %(batch)s, jsonb_build_object('text', 'item ' || i, 'truth', i %% 4), false, 'complete',
       %(overlap)s, %(overlap)s, %(overlap)s, now(), 'ext-' || i, ''
FROM generate_series(0, %(tasks)s - 1) AS i
"""

# Worker j of a task is (i * 7 + j * 401) mod W: distinct for j < overlap when W > 401 * (overlap - 1).
# Worker w is a spammer when w % 10 = 0 (uniform answers), else right with probability 0.85.
ANSWERS_SQL = """
INSERT INTO crowd_assignment (task_id, batch_id, worker_id, is_gold, status, answer, claimed_at,
                              expires_at, submitted_at, submit_key, feedback, review_reason)
SELECT t.id, t.batch_id, w.id, false, 'submitted',
       to_jsonb((ARRAY['a', 'b', 'c', 'd'])[1 + CASE
           WHEN w.n %% 10 = 0 THEN floor(random() * 4)::int
           WHEN random() < 0.85 THEN (t.input ->> 'truth')::int
           ELSE ((t.input ->> 'truth')::int + 1 + floor(random() * 3)::int) %% 4 END]),
       now(), now(), now(), '', '', ''
FROM (SELECT id, batch_id, input, row_number() OVER (ORDER BY id) - 1 AS i
      FROM marketplace_task WHERE batch_id = %(batch)s) t
CROSS JOIN generate_series(0, %(overlap)s - 1) AS j
JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM crowd_worker) w
  ON w.n = (t.i * 7 + j * 401) %% %(workers)s
"""


def seed(tasks: int, workers: int, overlap: int) -> int:
    from django.db import connection

    if workers <= 401 * (overlap - 1):
        raise SystemExit(
            f"--workers must exceed {401 * (overlap - 1)} for {overlap} distinct answers per task"
        )
    batch_id = seed_batch(
        "refit", answer_schema={"type": "string", "enum": list(LABELS)}, overlap=overlap, workers=workers
    )
    t0 = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(0.42)")
        cursor.execute(TASKS_SQL, {"batch": batch_id, "tasks": tasks, "overlap": overlap})
        cursor.execute(ANSWERS_SQL, {"batch": batch_id, "overlap": overlap, "workers": workers})
        cursor.execute("UPDATE marketplace_batch SET status = 'open' WHERE id = %s", [batch_id])
        cursor.execute("ANALYZE")
    seconds = time.perf_counter() - t0
    print(f"seeded {tasks:,} tasks x {overlap} answers from {workers:,} workers in {seconds:.1f} s")
    return batch_id


def timed(module: object, name: str, spent: dict[str, float]) -> None:
    """Wrap ``module.name`` so its wall time adds up in ``spent[name]``."""
    real = getattr(module, name)

    def wrapper(*args: object, **kwargs: object) -> object:
        t0 = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - t0

    setattr(module, name, wrapper)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=2_000)
    parser.add_argument("--overlap", type=int, default=5)
    parser.add_argument("--instant", type=int, default=500, help="single-task consensus calls to time")
    parser.add_argument("--database-url", default=DEFAULT_DB)
    args = parser.parse_args()
    recreate_database(args.database_url)
    django_setup(args.database_url)
    batch_id = seed(args.tasks, args.workers, args.overlap)

    from django.db import connection

    from crowd.models import WorkerConfusion
    from marketplace.models import Task, TaskConsensus
    from marketplace.services import consensus

    spent: dict[str, float] = {}
    for name in ("_batch_answers", "aggregate", "_refit_write"):
        timed(consensus, name, spent)
    t0 = time.perf_counter()
    version = consensus.batch_refit(batch_id=batch_id)
    total = time.perf_counter() - t0
    read, fit, write = spent["_batch_answers"], spent["aggregate"], spent["_refit_write"]
    print(
        f"re-fit v{version}: {total:.1f} s  (read answers {read:.1f} s, fit {fit:.1f} s, "
        f"write transaction {write:.1f} s, other {total - read - fit - write:.1f} s: fingerprint, gold)"
    )
    rows = TaskConsensus.objects.filter(batch_id=batch_id, model_version=version).count()
    kept = WorkerConfusion.objects.filter(batch_id=batch_id).count()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT avg(CASE WHEN (c.answer #>> '{}')"
            " = (ARRAY['a','b','c','d'])[1 + (t.input ->> 'truth')::int] THEN 1 ELSE 0 END)"
            " FROM marketplace_taskconsensus c JOIN marketplace_task t ON t.id = c.task_id"
            " WHERE c.batch_id = %s",
            [batch_id],
        )
        accuracy = float(cursor.fetchone()[0])
    print(f"wrote {rows:,} consensus rows and {kept:,} workers' confusion counts; accuracy {accuracy:.4f}")

    t0 = time.perf_counter()
    again = consensus.batch_refit(batch_id=batch_id)
    print(f"re-run on unchanged answers: {time.perf_counter() - t0:.1f} s, version still {again}")

    ids = list(
        Task.objects.filter(batch_id=batch_id).order_by("id").values_list("id", flat=True)[: args.instant]
    )
    # One task still open, as in a live batch: otherwise every call would see the batch complete
    # and enqueue a re-fit (run eagerly here, without a broker).
    last = Task.objects.filter(batch_id=batch_id).latest("id")
    Task.objects.filter(pk=last.pk).update(overlap=last.overlap + 1, status="open")
    t0 = time.perf_counter()
    for task_id in ids:
        consensus.task_consensus_update(task_id=task_id)
    per = (time.perf_counter() - t0) / len(ids) * 1000
    print(f"instant consensus of one task (fitted counts): {per:.2f} ms on average over {len(ids)} tasks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
