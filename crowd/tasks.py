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
