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
def task_answered(task_id: int, batch_id: int, worker_id: int, judge_peers: bool) -> None:
    """What a submit that gave a task its answers sets off, off the submit's response path: the
    task's consensus (and its dynamic-overlap decision), then, if the batch has an agreement rule,
    the rules of the task's other answerers (``rules_evaluate_task_peers``).

    Not in the request: at overlap 1 every regular answer completes its task and no gold answer
    does, so work done there would time regular answers apart from gold ones. Database errors are
    retried with backoff; both steps recompute from what is stored, so a repeat is harmless, and
    the periodic re-fit is the last resort.
    """
    from marketplace.services.consensus import task_consensus_update

    from .quality.rules import rules_evaluate_task_peers

    task_consensus_update(task_id=task_id)
    if judge_peers:
        rules_evaluate_task_peers(task_id=task_id, batch_id=batch_id, worker_id=worker_id)
