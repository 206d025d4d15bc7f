#!/usr/bin/env python
"""Stream a batch's results (issue 4) and show that memory stays flat, whatever the batch size.

Recreates ``crowdmarket_export`` (PostgreSQL), fills one batch with ``--tasks`` regular tasks and
a consensus row each, three answers each for the first ``--answered`` tasks (in SQL: seconds even
for a million rows), then streams ``results_csv`` and ``results_jsonl`` (the code behind
``GET /api/v1/batches/{id}/results``) to /dev/null, printing rows/s, bytes, and the peak of
Python allocations (tracemalloc) and of the process RSS while streaming.

    .venv/bin/python bench/results_export.py --tasks 1000000
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchdb import django_setup, recreate_database, seed_batch

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/crowdmarket_export"

SEED_SQL = """
INSERT INTO marketplace_task (batch_id, input, is_gold, status, overlap, slots_taken, answers_count,
                              created_at, external_id, gold_explanation)
SELECT %(batch)s, jsonb_build_object('text', 'item ' || i), false,
       CASE WHEN i <= %(answered)s THEN 'complete' ELSE 'open' END, 3,
       CASE WHEN i <= %(answered)s THEN 3 ELSE 0 END, CASE WHEN i <= %(answered)s THEN 3 ELSE 0 END,
       now(), 'ext-' || i, ''
FROM generate_series(1, %(tasks)s) AS i
"""

CONSENSUS_SQL = """
INSERT INTO marketplace_taskconsensus (task_id, batch_id, answer, confidence, answers_count, method,
                                       model_version, updated_at)
SELECT id, batch_id, '"cat"'::jsonb, 0.97, 3, 'dawid_skene', 1, now()
FROM marketplace_task WHERE batch_id = %(batch)s
"""

ANSWERS_SQL = """
INSERT INTO crowd_assignment (task_id, batch_id, worker_id, is_gold, status, answer, claimed_at,
                              expires_at, submitted_at, submit_key, feedback, review_reason)
SELECT t.id, t.batch_id, w.id, false, 'submitted', '"cat"'::jsonb, now(), now(), now(), '', '', ''
FROM (SELECT id, batch_id FROM marketplace_task WHERE batch_id = %(batch)s ORDER BY id LIMIT %(answered)s) t
CROSS JOIN (SELECT id FROM crowd_worker ORDER BY id LIMIT 3) w
"""


def seed(tasks: int, answered: int) -> int:
    from django.db import connection

    batch_id = seed_batch("export", answer_schema={"type": "string"}, overlap=3, workers=3)
    t0 = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(SEED_SQL, {"batch": batch_id, "tasks": tasks, "answered": answered})
        cursor.execute(CONSENSUS_SQL, {"batch": batch_id})
        if answered:
            cursor.execute(ANSWERS_SQL, {"batch": batch_id, "answered": answered})
        cursor.execute("ANALYZE")
    print(
        f"seeded {tasks:,} tasks ({answered:,} with 3 answers) in {time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    return batch_id


def rss_mib() -> float:
    """Current resident set size (Linux), in MiB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def stream(name: str, chunks) -> dict[str, float]:
    tracemalloc.start()
    rss_before, rss_peak = rss_mib(), 0.0
    t0 = time.perf_counter()
    size = lines = 0
    with open("/dev/null", "wb") as sink:
        for n, chunk in enumerate(chunks):
            sink.write(chunk)
            size += len(chunk)
            lines += chunk.count(b"\n")
            if n % 50 == 0:
                rss_peak = max(rss_peak, rss_mib())
    seconds = time.perf_counter() - t0
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_peak = max(rss_peak, rss_mib())
    figures = {
        "lines": lines,
        "MB": size / 1e6,
        "seconds": seconds,
        "lines_per_s": lines / seconds,
        "traced_peak_MiB": traced_peak / 2**20,
        "rss_growth_MiB": rss_peak - rss_before,
    }
    print(
        f"{name:<6} {lines:>10,} lines  {figures['MB']:8.1f} MB  {seconds:6.1f} s  "
        f"{figures['lines_per_s']:>9,.0f} lines/s  traced peak {figures['traced_peak_MiB']:6.1f} MiB  "
        f"RSS growth {figures['rss_growth_MiB']:6.1f} MiB",
        flush=True,
    )
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--answered", type=int, default=100_000, help="tasks given 3 answers each")
    parser.add_argument("--database-url", default=DEFAULT_DB)
    args = parser.parse_args()
    recreate_database(args.database_url)
    django_setup(args.database_url)
    batch_id = seed(args.tasks, min(args.answered, args.tasks))

    from marketplace.models import Batch
    from marketplace.services.results import results_csv, results_jsonl

    batch = Batch.objects.select_related("project").get(pk=batch_id)
    stream("csv", results_csv(batch))
    stream("jsonl", results_jsonl(batch))
    return 0


if __name__ == "__main__":
    sys.exit(main())
