"""Celery tasks of the worker side. Each is idempotent: re-running it changes nothing more."""

from celery import shared_task

from .services.leases import leases_expire_all


@shared_task(acks_late=True)
def assignment_expire_sweep() -> int:
    """Expire every overdue lease and give its slot back (beat, every LEASE_SWEEP_SECONDS)."""
    return leases_expire_all()


@shared_task(acks_late=True)
def assignment_auto_accept_sweep() -> int:
    """Accept answers left unreviewed past their batch's ``auto_accept_after_hours`` (beat, hourly).

    Chunked, SKIP LOCKED, idempotent: a re-run or a second copy accepts nothing twice.
    """
    from .quality.review import assignments_auto_accept

    return assignments_auto_accept()


@shared_task(acks_late=True)
def appeals_escalate() -> int:
    """Send appeals their requester left undecided past the deadline to the admins (beat, every
    APPEAL_ESCALATE_SECONDS). One conditional UPDATE: a re-run escalates nothing twice."""
    from .quality.appeals import appeals_escalate as escalate

    return escalate()
