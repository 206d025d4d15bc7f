"""Stripe webhooks: store each verified event once, then process it in a retry-safe task.

Every handler is idempotent (ledger keys, status checks, timestamps), so duplicate deliveries,
task redeliveries and out-of-order events change nothing twice. An event that refers to something
we have not seen yet (a dispute before its payment) raises EventNotReady and stays unprocessed;
the task retries it and the beat sweep picks up whatever is left.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from marketplace import strict_json
from marketplace.errors import ApplicationError, ValidationFailed
from marketplace.schemas import storable

from .. import stripe_client
from ..errors import EventNotReady
from ..models import FundingIntent, PayoutAccount, StripeEvent
from ..money import from_stripe_currency
from .escrow import requester_freeze
from .funding import funding_credit
from .payouts import payout_apply_transfer_reversal
from .refunds import refund_apply_stripe_state

__all__ = [
    "EventMalformed",
    "EventNotReady",
    "stripe_event_process",
    "stripe_event_store",
    "stripe_events_pending",
]

logger = logging.getLogger(__name__)


class EventMalformed(ValidationFailed):
    """A correctly signed body that is not a Stripe event we can store (400, nothing stored)."""

    default_code = "malformed_event"


def _event_problem(event: Any) -> str | None:
    """Why a verified body is not an event envelope we can store and process, or ``None``."""
    if not isinstance(event, dict):
        return "The event is not a JSON object."
    if not isinstance(event.get("id"), str) or not 1 <= len(event["id"]) <= 255:
        return "The event has no id (a string of 1 to 255 characters)."
    if not isinstance(event.get("type"), str) or not 1 <= len(event["type"]) <= 100:
        return "The event has no type (a string of 1 to 100 characters)."
    if type(event.get("created")) is not int or not 0 <= event["created"] < 2**63:
        return "The event has no created timestamp (a non-negative 64-bit integer)."
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        return "The event has no data.object."
    if not storable(event):
        return "The event contains the NUL character (\\u0000) or an unpaired surrogate."
    return None


def stripe_event_store(*, payload: bytes, signature_header: str | None) -> tuple[StripeEvent, bool]:
    """Verify and store one delivery; returns the event and whether it is new.

    Raises ``stripe_client.SignatureInvalid`` for a bad signature and ``EventMalformed`` for a
    signed body we cannot take (not an event object, ``NaN``, nested too deep): nothing stored
    either way. A new event is handed to the processing task after commit.
    """
    try:
        stripe_client.webhook_event_parse(payload, signature_header)
    except stripe_client.PayloadMalformed as exc:
        raise EventMalformed(exc.reason) from exc
    try:
        # Parsed again, strictly: what we store must be JSON PostgreSQL takes (no NaN, no 1e400).
        data = strict_json.loads(payload)
    except ValueError as exc:
        raise EventMalformed(f"The event is not valid JSON: {exc}.") from exc
    problem = _event_problem(data)
    if problem is not None:
        raise EventMalformed(problem)
    try:
        with transaction.atomic():
            event = StripeEvent.objects.create(stripe_id=data["id"], type=data["type"], payload=data)
    except IntegrityError:
        return StripeEvent.objects.get(stripe_id=data["id"]), False
    transaction.on_commit(lambda: _enqueue(event.pk))
    return event, True


def _enqueue(event_id: int) -> None:
    """Hand the event to Celery. Never fails the webhook reply: the beat sweep is the safety net."""
    from ..tasks import stripe_event_process

    try:
        stripe_event_process.delay(event_id)
    except Exception:
        logger.exception("could not process Stripe event %s now; the sweep will retry it", event_id)


def _funding_from(obj: dict[str, Any]) -> int | None:
    raw = (obj.get("metadata") or {}).get("funding_id")
    return int(raw) if raw and str(raw).isdigit() else None


def _on_checkout_completed(event: dict[str, Any]) -> str:
    session = event["data"]["object"]
    if session.get("payment_status") != "paid":
        return "ignored: not paid yet"
    funding_id = _funding_from(session)
    if funding_id is None:
        return "ignored: no funding_id"
    credited = funding_credit(
        funding_id=funding_id,
        amount_cents=int(session["amount_total"]),
        currency=from_stripe_currency(session["currency"]),
        payment_intent_id=session.get("payment_intent") or "",
        session_id=session["id"],
    )
    return "credited" if credited else "already credited"


def _on_payment_intent_succeeded(event: dict[str, Any]) -> str:
    intent = event["data"]["object"]
    funding_id = _funding_from(intent)
    if funding_id is None:
        return "ignored: no funding_id"
    credited = funding_credit(
        funding_id=funding_id,
        amount_cents=int(intent["amount_received"]),
        currency=from_stripe_currency(intent["currency"]),
        payment_intent_id=intent["id"],
    )
    return "credited" if credited else "already credited"


def _on_dispute_created(event: dict[str, Any]) -> str:
    dispute = event["data"]["object"]
    intent = FundingIntent.objects.filter(
        stripe_payment_intent_id=dispute.get("payment_intent") or ""
    ).first()
    if intent is None:
        raise EventNotReady(f"no funding for payment intent {dispute.get('payment_intent')!r} yet")
    requester_freeze(
        requester_id=intent.requester_id, reason=f"chargeback {dispute['id']} ({dispute.get('reason')})"
    )
    return f"froze requester {intent.requester_id}"


def _on_account_updated(event: dict[str, Any]) -> str:
    account = event["data"]["object"]
    payout_account = PayoutAccount.objects.select_for_update().filter(stripe_account_id=account["id"]).first()
    if payout_account is None:
        raise EventNotReady(f"no payout account {account['id']!r} yet")
    if event["created"] < payout_account.stripe_state_at:
        return "ignored: older than the state applied"
    ready = (
        bool(account.get("payouts_enabled"))
        and (account.get("capabilities") or {}).get("transfers") == "active"
    )
    payout_account.is_ready, payout_account.stripe_state_at = ready, event["created"]
    payout_account.save(update_fields=["is_ready", "stripe_state_at"])
    return f"ready={ready}"


def _on_refund(event: dict[str, Any]) -> str:
    return refund_apply_stripe_state(stripe_refund=event["data"]["object"])


def _on_charge_refunded(event: dict[str, Any]) -> str:
    """Informational: the charge does not say which refund it was (``refund.*`` events do, with our
    ``refund_id``), so no money moves here; the outcome notes any drift for an admin."""
    charge = event["data"]["object"]
    funding = FundingIntent.objects.filter(
        stripe_payment_intent_id=charge.get("payment_intent") or ""
    ).first()
    if funding is None:
        return "ignored: no funding for this charge"
    stripe_refunded = int(charge.get("amount_refunded") or 0)
    return f"noted: funding {funding.pk} refunded {stripe_refunded} at Stripe, {funding.refunded_cents} here"


def _on_transfer_reversed(event: dict[str, Any]) -> str:
    return payout_apply_transfer_reversal(transfer=event["data"]["object"])


HANDLERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "checkout.session.completed": _on_checkout_completed,
    "checkout.session.async_payment_succeeded": _on_checkout_completed,
    "payment_intent.succeeded": _on_payment_intent_succeeded,
    "charge.dispute.created": _on_dispute_created,
    "account.updated": _on_account_updated,
    "refund.created": _on_refund,
    "refund.updated": _on_refund,
    "refund.failed": _on_refund,
    "charge.refunded": _on_charge_refunded,
    "transfer.reversed": _on_transfer_reversed,
}


def stripe_event_process(*, event_id: int) -> str:
    """Apply one stored event once. The event row's lock serialises concurrent runs; its effects
    and ``processed_at`` commit together, so a crash in between leaves it to be redone whole."""
    # Counted outside the transaction so failed attempts show in the admin too.
    StripeEvent.objects.filter(pk=event_id, processed_at__isnull=True).update(attempts=F("attempts") + 1)
    with transaction.atomic():
        event = StripeEvent.objects.select_for_update().get(pk=event_id)
        if event.processed_at is not None:
            return event.outcome
        handler = HANDLERS.get(event.type)
        try:
            with transaction.atomic():
                outcome = handler(event.payload) if handler else "ignored: unhandled type"
        except ApplicationError as exc:
            # Our rules refused it (unknown funding, amount mismatch): retrying cannot help, so it
            # is closed with the reason for an admin to look at.
            logger.error("Stripe event %s refused: %s", event.stripe_id, exc.message)
            outcome = f"refused: {exc.code}: {exc.message}"
        event.processed_at, event.outcome = timezone.now(), outcome[:200]
        event.save(update_fields=["processed_at", "outcome"])
    return outcome


def stripe_events_pending(*, limit: int = 500) -> list[int]:
    return list(
        StripeEvent.objects.filter(processed_at__isnull=True)
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )
