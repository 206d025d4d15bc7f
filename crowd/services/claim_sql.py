"""The PostgreSQL claim: one statement per step, no ORM compilation on the hot path.

Why raw SQL here: profiling showed Django's query compiler costing more than PostgreSQL itself
for these small, fixed queries; and a data-modifying CTE lets the whole claim (lock, insert,
count) run as one statement, i.e. one round trip and one implicit transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from contextlib import nullcontext
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction

logger = logging.getLogger(__name__)

# ``OFFSET 0`` keeps the subquery a per-row probe of the (task, worker) unique index. Pulled up
# into an anti-join, the planner may merge-join against that index filtered on its second column,
# which reads every assignment of the batch up to the current task: slower with every answer.
_UNSEEN = (
    "NOT EXISTS (SELECT 1 FROM crowd_assignment a"
    " WHERE a.task_id = t.id AND a.worker_id = %(worker)s OFFSET 0)"
)
_CLAIMABLE = f"t.batch_id = %(batch)s AND NOT t.is_gold AND t.slots_taken < t.overlap AND {_UNSEEN}"

# Gold tasks have no capacity, so they are read unlocked from a random pivot, first: a gold share
# the worker cannot fill (they have seen every gold task) is filled with regular work instead.
# Regular tasks are locked with SKIP LOCKED so concurrent claimers never wait on each other; the
# lock re-checks ``slots_taken < overlap`` on the newest row version, and the check constraint is
# the last guard. Gold is served only beside regular work, so an exhausted batch returns nothing.
# Regular tasks are walked from a random point of the first ``CLAIM_WINDOW`` ids from the oldest
# task with a free slot (then from that oldest task up): tasks complete roughly in upload order,
# but concurrent claims spread over several index pages. If every claim started at the oldest
# task, all of them would fight over the same few index pages, where every slot update adds an
# entry (slots_taken is in the index's predicate) and the dead ones pile up faster than scans can
# mark them (a page changed under a scan is not marked): measured, a claim then read ~2,400
# buffers of dead entries instead of ~30. Each side is limited to the whole claim (a constant LIMIT
# keeps the planner's estimates small) and read lazily: the low side runs only if the high side
# came up short, and only rows actually used are locked.
# ``ON CONFLICT DO NOTHING`` absorbs a second session of the same worker that inserted the same
# task a moment earlier; only inserted rows take a slot. Rows are inserted in an order that is
# fixed per (worker, task) but unrelated to task ids or gold: two sessions of one worker then
# wait on each other's inserts in the same order (no deadlock), and assignment ids reveal nothing.
# ``allow`` is how many leases the worker may still take in the batch (``max_claims_per_request``
# minus their unexpired leases), counted by ``crowd_claim_allowance`` (migration crowd 0007) under a
# per-(worker, batch) advisory lock that it takes before this statement locks any task row (every
# LIMIT that feeds a locking scan depends on it): two sessions of one worker claim one after the
# other, and the second counts the first's leases, so the cap holds under concurrency.
_CLAIM_TEMPLATE = f"""
WITH allow AS (
    SELECT LEAST(%(n_total)s, crowd_claim_allowance(%(worker)s, %(batch)s, %(cap)s, %(now)s)) AS n
),
pivot AS (
    SELECT min(id) + floor(random() * (max(id) - min(id) + 1))::bigint AS at
    FROM marketplace_task WHERE batch_id = %(batch)s AND is_gold
),
gold AS (
    SELECT id, input FROM (
        (SELECT t.id, t.input, 0 AS part FROM marketplace_task t
         WHERE t.batch_id = %(batch)s AND t.is_gold AND t.id >= (SELECT at FROM pivot) AND {_UNSEEN}
         ORDER BY t.id LIMIT %(n_gold)s)
        UNION ALL
        (SELECT t.id, t.input, 1 AS part FROM marketplace_task t
         WHERE t.batch_id = %(batch)s AND t.is_gold AND t.id < (SELECT at FROM pivot) AND {_UNSEEN}
         ORDER BY t.id LIMIT %(n_gold)s)
    ) g
    ORDER BY part, id LIMIT GREATEST(0, LEAST(%(n_gold)s, (SELECT n FROM allow)))
),
start AS (
    SELECT head.id + floor(random() * %(window)s)::bigint AS at
    FROM (SELECT t.id FROM marketplace_task t
          WHERE t.batch_id = %(batch)s AND NOT t.is_gold AND t.slots_taken < t.overlap
          ORDER BY t.id LIMIT 1) head
),
locked_high AS (
    SELECT t.id, t.input FROM marketplace_task t
    WHERE {_CLAIMABLE} AND t.id >= (SELECT at FROM start)
    ORDER BY t.id LIMIT %(n_total)s
    FOR UPDATE OF t {{lock}}
),
locked_low AS (
    SELECT t.id, t.input FROM marketplace_task t
    WHERE {_CLAIMABLE} AND t.id < (SELECT at FROM start)
    ORDER BY t.id LIMIT %(n_total)s
    FOR UPDATE OF t {{lock}}
),
regular AS (
    SELECT id, input FROM (SELECT * FROM locked_high UNION ALL SELECT * FROM locked_low) l
    LIMIT GREATEST(0, (SELECT n FROM allow) - (SELECT count(*) FROM gold))
),
chosen AS (
    SELECT id, input, false AS is_gold FROM regular
    UNION ALL
    SELECT id, input, true AS is_gold FROM gold
    WHERE EXISTS (SELECT 1 FROM regular)
       OR ((SELECT n FROM allow) = (SELECT count(*) FROM gold)
           AND EXISTS (SELECT 1 FROM marketplace_task t WHERE {_CLAIMABLE}))
),
ins AS (
    INSERT INTO crowd_assignment
        (task_id, batch_id, worker_id, is_gold, status, claimed_at, expires_at, submit_key)
    SELECT id, %(batch)s, %(worker)s, is_gold, 'active', %(now)s, %(expires)s, ''
    FROM chosen ORDER BY md5(id::text || ':' || %(salt)s)
    ON CONFLICT (task_id, worker_id) DO NOTHING
    RETURNING id, task_id, is_gold
),
bump AS (
    UPDATE marketplace_task t SET slots_taken = t.slots_taken + 1
    FROM ins WHERE t.id = ins.task_id AND NOT ins.is_gold
)
SELECT (SELECT n FROM allow), served.id, served.input
FROM (SELECT 1) one LEFT JOIN (
    SELECT ins.id, chosen.input::text AS input FROM ins JOIN chosen ON chosen.id = ins.task_id
) served ON true
ORDER BY served.id
"""
CLAIM_SQL = _CLAIM_TEMPLATE.format(lock="SKIP LOCKED")
# The second try after an empty first one waits for rows other claimers hold instead of skipping
# them: near the end of a batch the only free slots may sit on rows locked for a moment.
CLAIM_WAIT_SQL = _CLAIM_TEMPLATE.format(lock="")

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
    RETURNING a.id, a.task_id, a.is_gold
),
event AS (
    INSERT INTO crowd_assignmentevent
        (assignment_id, from_status, to_status, actor, actor_user_id, rule_id, reason, created_at)
    SELECT id, 'active', 'expired', 'system', NULL, NULL, '', %(now)s FROM gone
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
    *,
    batch_id: int,
    worker_id: int,
    n_regular: int,
    n_gold: int,
    cap: int,
    now: datetime,
    expires: datetime,
) -> tuple[int, list[tuple[int, str]]]:
    """Run the claim statement. Returns the worker's allowance as counted under the lock (at most
    ``n_regular + n_gold``; 0 or less: they hold ``cap`` leases already, nothing was taken) and
    ``(assignment_id, input_json_text)`` in served order."""
    params: dict[str, Any] = {
        "batch": batch_id,
        "worker": worker_id,
        "salt": _insert_salt(worker_id),
        "n_total": n_regular + n_gold,
        "n_gold": n_gold,
        "cap": cap,
        "window": settings.CLAIM_WINDOW,
        "now": now,
        "expires": expires,
    }
    with connection.cursor() as cursor:
        cursor.execute(CLAIM_SQL, params)
        allowance, rows = _served(cursor.fetchall())
        if not rows and allowance > 0:
            # Waiting claims must lock in one global order (ids up from the oldest free task), or
            # two of them could each hold a row the other waits for: no random start here.
            cursor.execute(CLAIM_WAIT_SQL, {**params, "window": 1})
            allowance, rows = _served(cursor.fetchall())
        return allowance, rows


def _served(result: list[tuple[Any, ...]]) -> tuple[int, list[tuple[int, str]]]:
    """The claim statement's one row per lease (or one row of NULLs), each led by the allowance."""
    return result[0][0], [(pk, text) for _, pk, text in result if pk is not None]


def _insert_salt(worker_id: int) -> str:
    """A per-worker secret that orders a claim's inserts; see the comment on ``_CLAIM_TEMPLATE``."""
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, str(worker_id).encode(), hashlib.sha256).hexdigest()[:16]
