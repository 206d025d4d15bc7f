"""Celery tasks of the worker side. Each is idempotent: re-running it changes nothing more."""

from celery import shared_task
from django.db import DatabaseError

from .services.leases import leases_expire_all


@shared_task(acks_late=True)
def assignment_expire_sweep() -> int:
    """Expire every overdue lease and give its slot back (beat, every LEASE_SWEEP_SECONDS)."""
    return leases_expire_all()


@shared_task(acks_late=True)
def assignment_auto_accept_sweep() -> int:
    """Accept answers left unreviewed past their batch's ``auto_accept_after_hours``, and decide
    the answers of ``gold`` review batches past the gold reveal delay (beat, every 10 minutes).

    Chunked, SKIP LOCKED, idempotent: a re-run or a second copy decides nothing twice.
    """
    from .quality.review import assignments_auto_accept, assignments_gold_review

    return assignments_gold_review() + assignments_auto_accept()


@shared_task(acks_late=True)
def appeals_escalate() -> int:
    """Send appeals their requester left undecided past the deadline to the admins (beat, every
    APPEAL_ESCALATE_SECONDS). One conditional UPDATE: a re-run escalates nothing twice."""
    from .quality.appeals import appeals_escalate as escalate

    return escalate()


@shared_task(acks_late=True, autoretry_for=(DatabaseError,), retry_backoff=True, max_retries=5)
def batch_consensus_drain(batch_id: int) -> int:
    """The consensus of every task of a batch that got its answers since the last drain
    (``consensus.consensus_drain``, with dynamic overlap's decisions), then, if the batch has an
    agreement rule, the rules of those tasks' answerers (``rules_evaluate_task_peers``): a worker
    who answers tasks first is otherwise compared with few others.

    Queued by the submits (``submissions.consensus_drain_soon``), never computed in their
    response: see there. Database errors are retried with backoff; every step recomputes from
    what is stored, so a repeat is harmless, and the periodic re-fit is the last resort. Returns
    how many tasks it computed.
    """
    from marketplace.services.consensus import consensus_drain

    from .quality.rules import rules_evaluate_task_peers, rules_judge_peers

    done = consensus_drain(batch_id=batch_id)
    if done and rules_judge_peers(batch_id=batch_id):
        for task_id in done:
            rules_evaluate_task_peers(task_id=task_id, batch_id=batch_id)
    return len(done)
