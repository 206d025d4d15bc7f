"""Celery tasks of the worker side. Each is idempotent: re-running it changes nothing more."""

from celery import shared_task

from .services.leases import leases_expire_all


@shared_task(acks_late=True)
def assignment_expire_sweep() -> int:
    """Expire every overdue lease and give its slot back (beat, every LEASE_SWEEP_SECONDS)."""
    return leases_expire_all()
