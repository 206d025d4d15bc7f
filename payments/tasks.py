"""Celery tasks of payments. Each takes ids and is idempotent; the services make re-runs harmless."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from .errors import LedgerImbalance
from .services import escrow, ledger, payouts, refunds, webhooks
from .stripe_client import StripeTransientError

logger = logging.getLogger(__name__)


@shared_task(
    acks_late=True,
    autoretry_for=(webhooks.EventNotReady,),
    retry_backoff=5,
    retry_backoff_max=600,
    max_retries=8,
)
def stripe_event_process(event_id: int) -> str:
    return webhooks.stripe_event_process(event_id=event_id)


@shared_task(acks_late=True)
def stripe_events_process_pending() -> int:
    """Beat: process events whose task was lost or gave up (e.g. a dispute before its payment)."""
    done = 0
    for event_id in webhooks.stripe_events_pending():
        try:
            webhooks.stripe_event_process(event_id=event_id)
            done += 1
        except webhooks.EventNotReady as exc:
            logger.info("Stripe event %s not ready: %s", event_id, exc)
    return done


@shared_task(
    acks_late=True,
    autoretry_for=(StripeTransientError,),
    retry_backoff=2,
    retry_backoff_max=300,
    max_retries=10,
)
def payout_execute(payout_id: int) -> str:
    """Transient Stripe errors retry with backoff (same idempotency key); refusals are final."""
    return payouts.payout_execute(payout_id=payout_id).status


@shared_task(
    acks_late=True,
    autoretry_for=(StripeTransientError,),
    retry_backoff=2,
    retry_backoff_max=300,
    max_retries=10,
)
def refund_execute(refund_id: int) -> str:
    """Transient Stripe errors retry with backoff (same key ``refund:<id>``); refusals are final."""
    return refunds.refund_execute(refund_id=refund_id).status


def _requeue(task: Any, ids: list[int], what: str) -> list[int]:
    queued = []
    for row_id in ids:
        try:
            task.delay(row_id)
            queued.append(row_id)
        except Exception:
            # A broker outage (or, eagerly, a still-failing Stripe) must not stop the other rows;
            # the next sweep tries again.
            logger.exception("could not re-drive %s %s", what, row_id)
    return queued


@shared_task(acks_late=True)
def payouts_requeue_stuck() -> list[int]:
    """Beat: re-drive payouts left ``pending``/``processing`` for ``PAYOUT_STUCK_MINUTES``.

    Each goes back through ``payout_execute`` with the same Stripe key ``payout:<id>``, so a
    transfer Stripe already made is returned, not made again; running this twice (or alongside a
    still-retrying task) is harmless because ``payout_execute`` locks the row and checks its state.
    """
    return _requeue(payout_execute, payouts.payouts_stuck(), "payout")


@shared_task(acks_late=True)
def refunds_requeue_stuck() -> list[int]:
    """Beat: re-drive refunds left ``pending``/``processing`` (same key ``refund:<id>``)."""
    return _requeue(refund_execute, refunds.refunds_stuck(), "refund")


@shared_task(acks_late=True)
def pending_to_available_sweep() -> int:
    return escrow.pending_to_available_sweep()


@shared_task(acks_late=True)
def ledger_reconcile() -> int:
    """Beat: raise (and so alert through Celery's error logging) if the ledger is out of balance or
    disagrees with what the other apps expect of it (``ledger_reconcile_all``)."""
    problems = ledger.ledger_reconcile_all()
    if problems:
        for line in problems:
            logger.error("ledger mismatch: %s", line)
        raise LedgerImbalance("; ".join(problems))
    return 0
