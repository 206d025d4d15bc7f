"""Celery tasks of the requester side. Each takes ids and is idempotent: the service makes a re-run
harmless."""

from celery import Task, shared_task
from django.db import DatabaseError


@shared_task(acks_late=True)
def batch_refit_task(batch_id: int) -> int:
    """Re-fit one batch's consensus (full EM); a re-run with the same answers writes nothing."""
    from .services.consensus import batch_refit

    return batch_refit(batch_id=batch_id)


@shared_task(acks_late=True)
def consensus_refit_sweep() -> int:
    """Enqueue a re-fit of every open or paused batch with answers since its last fit (beat, every
    CONSENSUS_REFIT_SECONDS). Returns how many were enqueued."""
    from .services.consensus import batches_due_for_refit

    due = batches_due_for_refit()
    for batch_id in due:
        batch_refit_task.delay(batch_id)
    return len(due)


@shared_task(
    acks_late=True,
    autoretry_for=(DatabaseError,),
    retry_backoff=True,
    max_retries=5,
)
def task_consensus_task(task_id: int) -> None:
    """One task's consensus (and its dynamic-overlap decision); database errors (a deadlock, a lost
    connection) are retried with backoff. Safe to repeat: it recomputes from the answers stored
    now. Submits now queue ``crowd.tasks.batch_consensus_drain`` instead; this name stays registered so
    messages queued by the previous release still run."""
    from .services.consensus import task_consensus_update

    task_consensus_update(task_id=task_id)


@shared_task(bind=True, acks_late=True, max_retries=3)
def batch_snapshot_task(self: Task, snapshot_id: int) -> str:
    """Write a requested snapshot (``results.snapshot_write``; a done one is left alone). Database
    and file-system errors are retried with backoff; after the last retry the snapshot is marked
    failed, so a requester polling it sees why instead of ``pending`` for ever."""
    from .services.results import snapshot_fail, snapshot_write

    try:
        return snapshot_write(snapshot_id=snapshot_id).status
    except (DatabaseError, OSError) as exc:
        if self.request.retries >= self.max_retries:
            snapshot_fail(snapshot_id=snapshot_id, error=f"{type(exc).__name__}: {exc}")
            raise
        raise self.retry(exc=exc, countdown=5 * 2**self.request.retries) from exc
