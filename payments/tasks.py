"""Celery tasks of payments. Each takes ids and is idempotent; the services make re-runs harmless."""

from __future__ import annotations

import logging

from celery import shared_task

from .errors import LedgerImbalance
from .services import escrow, ledger, payouts, webhooks
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


@shared_task(acks_late=True)
def pending_to_available_sweep() -> int:
    return escrow.pending_to_available_sweep()


@shared_task(acks_late=True)
def ledger_reconcile() -> int:
    """Beat: raise (and so alert through Celery's error logging) if the ledger is out of balance."""
    problems = ledger.ledger_reconcile()
    if problems:
        for line in problems:
            logger.error("ledger mismatch: %s", line)
        raise LedgerImbalance("; ".join(problems))
    return 0
