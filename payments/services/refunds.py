"""Refunds: a requester withdraws unspent available funds back to the card, in three phases.

1. ``refund_request``: in one transaction, under row locks on the requester's fundings, one
   ``Refund`` row per funding charge drawn on (the given one, or newest first) and a ledger move of
   each amount from the requester's available balance to the platform's ``refunds`` account (money
   in transit back to the card). ``FundingIntent.refunded_cents`` counts reserved refunds too, so
   its check constraint makes refunding a charge twice impossible.
2. ``refund_execute`` (a Celery task, after commit): the Stripe Refund against the funding's
   PaymentIntent, outside any transaction, with the idempotency key ``refund:<id>``. A retry after
   a timeout or a lost reply sends the same key, so Stripe returns the first refund.
3. In a new transaction: succeeded (``refunds`` → Stripe clearing: the money left the platform) or,
   if Stripe refused, failed (``refunds`` → back to available). Transient errors leave the refund
   ``processing`` and propagate, so the task retries; ``refunds_requeue_stuck`` re-drives the rest.

Webhooks (``refund.created``/``refund.updated``/``refund.failed``) carry our ``refund_id`` in
metadata and go through ``refund_apply_stripe_state``: they record a success the lost reply never
told us about, and a refund that fails after succeeding puts the money back on the requester's
available balance, each at most once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from marketplace.errors import Conflict, NotFound, ValidationFailed
from marketplace.models import Requester

from .. import stripe_client
from ..enums import AccountKind, EntryKind, FundingStatus, RefundStatus
from ..errors import InsufficientFunds
from ..models import Account, FundingIntent, Refund
from ..money import SUPPORTED_CURRENCIES
from .escrow import requester_check_not_frozen
from .ledger import ledger_transfer, platform_account, requester_account

logger = logging.getLogger(__name__)

FINAL = (RefundStatus.SUCCEEDED, RefundStatus.FAILED)


@dataclass(frozen=True)
class RefundRequest:
    """The rows one refund request made (several when it spans fundings), newest funding first."""

    refunds: list[Refund]

    @property
    def amount_cents(self) -> int:
        return sum(r.amount_cents for r in self.refunds)


def _check_input(amount_cents: int, currency: str) -> None:
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int) or amount_cents <= 0:
        raise ValidationFailed("Invalid amount.", detail={"amount_cents": ["Must be a positive integer."]})
    if currency not in SUPPORTED_CURRENCIES:
        raise ValidationFailed(
            "Unsupported currency.",
            detail={"currency": [f"Choose one of: {', '.join(SUPPORTED_CURRENCIES)}."]},
        )


def _keyed(
    *, requester: Requester, client_key: str, amount_cents: int, funding_id: int | None
) -> RefundRequest | None:
    """The refunds an earlier request with this Idempotency-Key made; Conflict if it asked otherwise."""
    if not client_key:
        return None
    rows = list(Refund.objects.filter(requester=requester, client_key=client_key).order_by("-funding_id"))
    if not rows:
        return None
    made = RefundRequest(rows)
    if made.amount_cents != amount_cents or (
        funding_id is not None and {r.funding_id for r in rows} != {funding_id}
    ):
        raise Conflict(
            "This Idempotency-Key was used for a different refund request.",
            code="idempotency_key_reused",
            detail={"refund_ids": [r.pk for r in rows]},
        )
    return made


def _plan(fundings: list[FundingIntent], amount_cents: int) -> list[tuple[FundingIntent, int]]:
    """Split ``amount_cents`` over ``fundings`` in order, each up to what is left to refund on it."""
    plan, left = [], amount_cents
    for funding in fundings:
        take = min(left, funding.amount_cents - funding.refunded_cents)
        if take > 0:  # once ``left`` is 0, so is every later ``take``
            plan.append((funding, take))
            left -= take
    return plan


def refund_request(
    *,
    requester: Requester,
    amount_cents: int,
    currency: str = "USD",
    funding_id: int | None = None,
    idempotency_key: str = "",
) -> RefundRequest:
    """Phase 1: reserve the refund and queue the Stripe call. Refusals change nothing.

    400 for a bad amount or currency; 404 ``not_found`` for a funding that is not the requester's;
    409 ``funding_not_refundable`` for a funding that was never paid; 409 ``refund_exceeds_charges``
    when the charges (the given one, or all) have less left to refund than asked, with
    ``refundable_cents``; 409 ``insufficient_funds`` above the available balance, with
    ``shortfall_cents``; 409 ``requester_frozen`` during a chargeback. The same Idempotency-Key
    returns the first request's refunds.
    """
    _check_input(amount_cents, currency)
    requester_check_not_frozen(requester_id=requester.pk)
    found = _keyed(
        requester=requester, client_key=idempotency_key, amount_cents=amount_cents, funding_id=funding_id
    )
    if found is not None:
        return found
    if (
        funding_id is not None
        and not FundingIntent.objects.filter(pk=funding_id, requester=requester).exists()
    ):
        raise NotFound("Funding not found.")
    available = requester_account(requester.pk, AccountKind.AVAILABLE, currency)
    in_transit = platform_account(AccountKind.REFUNDS, currency)
    try:
        with transaction.atomic():
            # Fundings first, then accounts (inside the ledger): the order funding_credit uses too.
            candidates = FundingIntent.objects.select_for_update().filter(
                requester=requester, currency=currency
            )
            if funding_id is not None:
                candidates = candidates.filter(pk=funding_id)
            fundings = list(candidates.order_by("-id"))
            # Another request with the same key may have committed while we waited for the locks.
            found = _keyed(
                requester=requester,
                client_key=idempotency_key,
                amount_cents=amount_cents,
                funding_id=funding_id,
            )
            if found is not None:
                return found
            paid = [f for f in fundings if f.status == FundingStatus.SUCCEEDED and f.stripe_payment_intent_id]
            if funding_id is not None and not paid:
                raise Conflict(
                    "This funding was not paid, so there is nothing to refund.",
                    code="funding_not_refundable",
                    detail={"funding_id": funding_id},
                )
            refundable = sum(f.amount_cents - f.refunded_cents for f in paid)
            if amount_cents > refundable:
                raise Conflict(
                    "The card charges have less left to refund than asked.",
                    code="refund_exceeds_charges",
                    detail={
                        "refundable_cents": refundable,
                        "shortfall_cents": amount_cents - refundable,
                        "currency": currency,
                    },
                )
            # Both accounts the ledger will lock, in its ascending-id order, so that reading the balance
            # here cannot deadlock with a refund outcome locking them the other way round.
            locked = {
                a.pk: a
                for a in Account.objects.select_for_update()
                .filter(id__in=[available.pk, in_transit.pk])
                .order_by("id")
            }
            balance = locked[available.pk].balance_cents
            if amount_cents > balance:
                raise InsufficientFunds(
                    "Your available balance is too low for this refund.",
                    detail={
                        "account": AccountKind.AVAILABLE,
                        "balance_cents": balance,
                        "shortfall_cents": amount_cents - balance,
                        "currency": currency,
                    },
                )
            rows = []
            for funding, part in _plan(paid, amount_cents):
                refund = Refund.objects.create(
                    requester=requester,
                    funding=funding,
                    amount_cents=part,
                    currency=currency,
                    client_key=idempotency_key,
                )
                FundingIntent.objects.filter(pk=funding.pk).update(refunded_cents=F("refunded_cents") + part)
                ledger_transfer(
                    debit=available,
                    credit=in_transit,
                    amount_cents=part,
                    idempotency_key=f"refund:{refund.pk}:reserve",
                    kind=EntryKind.REFUND,
                    reference=f"refund:{refund.pk}",
                )
                rows.append(refund)
            ids = [r.pk for r in rows]
            transaction.on_commit(lambda: _enqueue(ids))
    except IntegrityError:
        found = _keyed(
            requester=requester, client_key=idempotency_key, amount_cents=amount_cents, funding_id=funding_id
        )
        if found is None:  # pragma: no cover - only the client-key constraint can fire here
            raise
        return found
    return RefundRequest(rows)


def _enqueue(refund_ids: list[int]) -> None:
    """Hand each refund to Celery. A lost enqueue is picked up by ``refunds_requeue_stuck``."""
    from ..tasks import refund_execute

    for refund_id in refund_ids:
        try:
            refund_execute.delay(refund_id)
        except Exception:
            logger.exception("could not queue refund %s now; the requeue sweep will retry it", refund_id)


def _succeed(refund: Refund, stripe_refund_id: str) -> None:
    """Phase 3, success: the money left the platform. The caller holds the row lock."""
    ledger_transfer(
        debit=platform_account(AccountKind.REFUNDS, refund.currency),
        credit=platform_account(AccountKind.STRIPE_CLEARING, refund.currency),
        amount_cents=refund.amount_cents,
        idempotency_key=f"refund:{refund.pk}:settle",
        kind=EntryKind.REFUND_SETTLE,
        reference=f"refund:{refund.pk}",
    )
    refund.status, refund.stripe_refund_id = RefundStatus.SUCCEEDED, stripe_refund_id
    refund.save(update_fields=["status", "stripe_refund_id", "updated_at"])


def _fail(refund: Refund, *, code: str, message: str) -> None:
    """Money back to the requester's available balance and the charge refundable again, once.

    From ``pending``/``processing`` the money is still in the ``refunds`` account; from
    ``succeeded`` (Stripe failed the refund later) it has gone back to Stripe's balance, which the
    clearing account mirrors. The caller holds the row lock.
    """
    source = AccountKind.STRIPE_CLEARING if refund.status == RefundStatus.SUCCEEDED else AccountKind.REFUNDS
    ledger_transfer(
        debit=platform_account(source, refund.currency),
        credit=requester_account(refund.requester_id, AccountKind.AVAILABLE, refund.currency),
        amount_cents=refund.amount_cents,
        idempotency_key=f"refund:{refund.pk}:reverse",
        kind=EntryKind.REFUND_REVERSE,
        reference=f"refund:{refund.pk}",
    )
    FundingIntent.objects.filter(pk=refund.funding_id).update(
        refunded_cents=F("refunded_cents") - refund.amount_cents
    )
    refund.status, refund.failure_code, refund.failure_message = RefundStatus.FAILED, code[:100], message
    refund.save(update_fields=["status", "failure_code", "failure_message", "updated_at"])


def refund_execute(*, refund_id: int) -> Refund:
    """Phases 2 and 3. Safe to run any number of times, concurrently too: every attempt sends the
    same Stripe idempotency key ``refund:<id>``. Raises StripeTransientError (refund left
    ``processing``) so the task can retry."""
    with transaction.atomic():
        refund = Refund.objects.select_for_update().select_related("funding").get(pk=refund_id)
        if refund.status in FINAL:
            return refund
        refund.status, refund.attempts = RefundStatus.PROCESSING, refund.attempts + 1
        refund.save(update_fields=["status", "attempts", "updated_at"])
    try:
        made = stripe_client.refund_create(
            payment_intent=refund.funding.stripe_payment_intent_id,
            amount_cents=refund.amount_cents,
            metadata={
                "refund_id": str(refund.pk),
                "funding_id": str(refund.funding_id),
                "requester_id": str(refund.requester_id),
            },
            idempotency_key=refund.stripe_key,
        )
    except stripe_client.StripePermanentError as exc:
        if exc.code == "idempotency_error":
            # The key may already have refunded the card: never return the money on this signal.
            raise
        return _finish(refund.pk, failure=exc)
    if made.get("status") in ("failed", "canceled"):
        return _finish(
            refund.pk,
            failure=stripe_client.StripePermanentError(
                f"Stripe reported the refund {made['status']}.",
                code=str(made.get("failure_reason") or "refund_failed"),
            ),
        )
    return _finish(refund.pk, stripe_refund_id=made["id"])


def _finish(
    refund_id: int, *, stripe_refund_id: str = "", failure: stripe_client.StripePermanentError | None = None
) -> Refund:
    """Phase 3: record the outcome once; a second call finds the refund final and returns it."""
    with transaction.atomic():
        refund = Refund.objects.select_for_update().get(pk=refund_id)
        if refund.status in FINAL:
            return refund
        if failure is None:
            _succeed(refund, stripe_refund_id)
        else:
            _fail(refund, code=failure.code or "stripe_refused", message=str(failure))
    return refund


def refund_apply_stripe_state(*, stripe_refund: dict[str, Any]) -> str:
    """Apply what a ``refund.*`` event says about one of our refunds; idempotent and order-safe.

    ``succeeded`` (or ``pending``: Stripe accepted it) records a success our call never heard back
    about; ``failed``/``canceled`` returns the money (from in transit, or from Stripe's balance if we
    had recorded a success). A failed refund never becomes succeeded again, so a late
    ``refund.created`` after ``refund.failed`` changes nothing.
    """
    raw = str((stripe_refund.get("metadata") or {}).get("refund_id") or "")
    if not raw.isdigit():
        return "ignored: no refund_id"
    with transaction.atomic():
        refund = Refund.objects.select_for_update().filter(pk=int(raw)).first()
        if refund is None:
            return f"ignored: unknown refund {raw}"
        state = stripe_refund.get("status")
        if state in ("succeeded", "pending"):
            if refund.status in FINAL:
                return f"refund {refund.pk} already {refund.status}"
            _succeed(refund, stripe_refund["id"])
            return f"refund {refund.pk} succeeded"
        if state in ("failed", "canceled"):
            if refund.status == RefundStatus.FAILED:
                return f"refund {refund.pk} already failed"
            _fail(
                refund,
                code=str(stripe_refund.get("failure_reason") or "refund_failed"),
                message=f"Stripe reported the refund {state}.",
            )
            return f"refund {refund.pk} failed: money back to available"
    return f"ignored: status {state!r}"


def refunds_stuck(*, older_than: timedelta | None = None, now: datetime | None = None) -> list[int]:
    """Refunds still ``pending``/``processing`` after ``REFUND_STUCK_MINUTES`` (default 15)."""
    age = older_than or timedelta(minutes=getattr(settings, "REFUND_STUCK_MINUTES", 15))
    cutoff = (now or timezone.now()) - age
    return list(
        Refund.objects.filter(
            status__in=[RefundStatus.PENDING, RefundStatus.PROCESSING], updated_at__lt=cutoff
        )
        .order_by("id")
        .values_list("id", flat=True)
    )
