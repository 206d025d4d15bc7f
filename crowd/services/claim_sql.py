"""The PostgreSQL claim: one statement per step, no ORM compilation on the hot path.

Why raw SQL here: profiling showed Django's query compiler costing more than PostgreSQL itself
for these small, fixed queries; and a data-modifying CTE lets the whole claim (lock, insert,
count) run as one statement, i.e. one round trip and one implicit transaction.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from datetime import datetime
from typing import Any

from django.db import DatabaseError, connection, transaction

logger = logging.getLogger(__name__)

_UNSEEN = "NOT EXISTS (SELECT 1 FROM crowd_assignment a WHERE a.task_id = t.id AND a.worker_id = %(worker)s)"
_CLAIMABLE = f"t.batch_id = %(batch)s AND NOT t.is_gold AND t.slots_taken < t.overlap AND {_UNSEEN}"

# Regular tasks are locked with SKIP LOCKED so concurrent claimers never wait on each other; the
# lock re-checks ``slots_taken < overlap`` on the newest row version, and the check constraint is
# the last guard. Gold tasks have no capacity, so they are read unlocked from a random pivot.
# ``ON CONFLICT DO NOTHING`` absorbs a second session of the same worker that committed the same
# task a moment earlier; only inserted rows take a slot. Gold is served only beside regular work.
CLAIM_SQL = f"""
WITH regular AS (
    SELECT t.id, t.input FROM marketplace_task t
    WHERE {_CLAIMABLE}
    ORDER BY t.id LIMIT %(n_regular)s
    FOR UPDATE OF t SKIP LOCKED
),
pivot AS (
    SELECT min(id) + floor(random() * (max(id) - min(id) + 1))::bigint AS at
    FROM marketplace_task WHERE batch_id = %(batch)s AND is_gold
),
gold AS (
    SELECT id, input FROM (
        (SELECT t.id, t.input, 0 AS part FROM marketplace_task t, pivot
         WHERE t.batch_id = %(batch)s AND t.is_gold AND t.id >= pivot.at AND {_UNSEEN}
         ORDER BY t.id LIMIT %(n_gold)s)
        UNION ALL
        (SELECT t.id, t.input, 1 AS part FROM marketplace_task t, pivot
         WHERE t.batch_id = %(batch)s AND t.is_gold AND t.id < pivot.at AND {_UNSEEN}
         ORDER BY t.id LIMIT %(n_gold)s)
    ) g
    ORDER BY part, id LIMIT %(n_gold)s
),
chosen AS (
    SELECT id, input, false AS is_gold FROM regular
    UNION ALL
    SELECT id, input, true AS is_gold FROM gold
    WHERE EXISTS (SELECT 1 FROM regular)
       OR (%(n_regular)s = 0 AND EXISTS (SELECT 1 FROM marketplace_task t WHERE {_CLAIMABLE}))
),
ins AS (
    INSERT INTO crowd_assignment
        (task_id, batch_id, worker_id, is_gold, status, claimed_at, expires_at, submit_key)
    SELECT id, %(batch)s, %(worker)s, is_gold, 'active', %(now)s, %(expires)s, ''
    FROM chosen ORDER BY random()
    ON CONFLICT (task_id, worker_id) DO NOTHING
    RETURNING id, task_id, is_gold
),
bump AS (
    UPDATE marketplace_task t SET slots_taken = t.slots_taken + 1
    FROM ins WHERE t.id = ins.task_id AND NOT ins.is_gold
)
SELECT ins.id, chosen.input::text FROM ins JOIN chosen ON chosen.id = ins.task_id ORDER BY ins.id
"""

# Overdue leases of one batch: mark them expired and give their slots back, in one statement.
# SKIP LOCKED leaves rows that a submit is holding to that submit.
EXPIRE_SQL = """
WITH stale AS (
    SELECT id FROM crowd_assignment
    WHERE batch_id = %(batch)s AND status = 'active' AND expires_at <= %(now)s
    ORDER BY expires_at LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
gone AS (
    UPDATE crowd_assignment a SET status = 'expired', ended_at = %(now)s
    FROM stale WHERE a.id = stale.id
    RETURNING a.task_id, a.is_gold
)
UPDATE marketplace_task t SET slots_taken = t.slots_taken - g.n
FROM (SELECT task_id, count(*) AS n FROM gone WHERE NOT is_gold GROUP BY task_id) g
WHERE t.id = g.task_id
"""


def expire_batch_leases(*, batch_id: int, now: datetime, limit: int) -> None:
    """Lazily expire overdue leases of a batch before a claim. Must run outside a transaction.

    Best effort: if it loses a deadlock against another expirer, the beat sweep finishes the job.
    """
    try:
        # Inside an outer transaction (tests) a savepoint keeps a failure from poisoning it.
        guard = transaction.atomic() if connection.in_atomic_block else nullcontext()
        with guard, connection.cursor() as cursor:
            cursor.execute(EXPIRE_SQL, {"batch": batch_id, "now": now, "limit": limit})
    except DatabaseError:
        logger.warning("lazy lease expiry skipped for batch %s", batch_id, exc_info=True)


def claim(
    *, batch_id: int, worker_id: int, n_regular: int, n_gold: int, now: datetime, expires: datetime
) -> list[tuple[int, str]]:
    """Run the claim statement; returns ``(assignment_id, input_json_text)`` in served order."""
    params: dict[str, Any] = {
        "batch": batch_id,
        "worker": worker_id,
        "n_regular": n_regular,
        "n_gold": n_gold,
        "now": now,
        "expires": expires,
    }
    with connection.cursor() as cursor:
        cursor.execute(CLAIM_SQL, params)
        return cursor.fetchall()
