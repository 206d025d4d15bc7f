"""Worker payouts through Stripe Connect, in three phases so no money is lost or paid twice.

1. ``payout_request``: in one transaction, a Payout row and a ledger move of the amount from the
   worker's available balance to the platform's payouts-in-transit account.
2. ``payout_execute`` (a Celery task, after commit): the Stripe Transfer, outside any transaction,
   with the idempotency key ``payout:<id>``. A retry after a timeout or a lost reply sends the
   same key, so Stripe returns the first transfer instead of making a second.
3. In a new transaction: paid (in-transit → Stripe clearing) or, if Stripe refused, failed
   (in-transit → back to the worker's available balance). Transient errors leave the payout in
   ``processing`` and propagate, so the task retries.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from crowd.models import Worker
from marketplace.errors import Conflict, ValidationFailed

from .. import stripe_client
from ..enums import AccountKind, EntryKind, PayoutStatus
from ..errors import EventNotReady, PaymentProviderUnavailable
from ..models import Payout, PayoutAccount
from ..money import SUPPORTED_CURRENCIES
from .ledger import ledger_transfer, platform_account, worker_account


def payout_account_onboard(*, worker: Worker) -> tuple[PayoutAccount, str]:
    """The worker's Connect account (created once, key ``payout-account:<row id>``) and a fresh
    onboarding link. Raises PaymentProviderUnavailable (503) when Stripe cannot be reached and
    ValidationFailed ``payment_refused`` (400, with Stripe's code) when it refuses."""
    account, _ = PayoutAccount.objects.get_or_create(worker=worker)
    try:
        if not account.stripe_account_id:
            created = stripe_client.account_create(
                email=worker.user.email,
                metadata={"worker_id": str(worker.pk)},
                idempotency_key=f"payout-account:{account.pk}",
            )
            PayoutAccount.objects.filter(pk=account.pk, stripe_account_id="").update(
                stripe_account_id=created["id"]
            )
            account.refresh_from_db()
        link = stripe_client.account_link_create(account_id=account.stripe_account_id)
    except stripe_client.StripeTransientError as exc:
        raise PaymentProviderUnavailable("Stripe is unreachable; try again.") from exc
    except stripe_client.StripePermanentError as exc:
        raise ValidationFailed(
            "Stripe refused the onboarding request.", code="payment_refused", detail={"stripe_code": exc.code}
        ) from exc
    return account, link["url"]


def _keyed(*, worker: Worker, client_key: str, amount_cents: int, currency: str) -> Payout | None:
    if not client_key:
        return None
    found = Payout.objects.filter(worker=worker, client_key=client_key).first()
    if found is not None and (found.amount_cents, found.currency) != (amount_cents, currency):
        raise Conflict(
            "This Idempotency-Key was used for a different payout.",
            code="idempotency_key_reused",
            detail={"payout_id": found.pk},
        )
    return found


def payout_request(
    *, worker: Worker, amount_cents: int, currency: str = "USD", idempotency_key: str = ""
) -> Payout:
    """Phase 1: reserve the amount and queue the transfer. Refusals change nothing.

    409 ``payout_account_not_ready`` before onboarding, 409 ``insufficient_funds`` above the
    available balance, 400 below PAYOUT_MINIMUM_CENTS. The same Idempotency-Key returns the
    first payout.
    """
    minimum = settings.PAYOUT_MINIMUM_CENTS
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int) or amount_cents < minimum:
        raise ValidationFailed(
            "Invalid amount.", detail={"amount_cents": [f"Must be an integer of at least {minimum}."]}
        )
    if currency not in SUPPORTED_CURRENCIES:
        raise ValidationFailed(
            "Unsupported currency.", detail={"currency": [f"Choose one of: {SUPPORTED_CURRENCIES}."]}
        )
    found = _keyed(worker=worker, client_key=idempotency_key, amount_cents=amount_cents, currency=currency)
    if found is not None:
        return found
    account = PayoutAccount.objects.filter(worker=worker).first()
    if account is None or not account.is_ready or not account.stripe_account_id:
        raise Conflict("Finish payout onboarding first.", code="payout_account_not_ready")
    available = worker_account(worker.pk, AccountKind.AVAILABLE, currency)
    in_transit = platform_account(AccountKind.PAYOUTS_IN_TRANSIT, currency)
    try:
        with transaction.atomic():
            payout = Payout.objects.create(
                worker=worker,
                amount_cents=amount_cents,
                currency=currency,
                client_key=idempotency_key,
                destination=account.stripe_account_id,
            )
            ledger_transfer(
                debit=available,
                credit=in_transit,
                amount_cents=amount_cents,
                idempotency_key=f"payout:{payout.pk}:reserve",
                kind=EntryKind.PAYOUT,
                reference=f"payout:{payout.pk}",
            )
            transaction.on_commit(lambda: _enqueue(payout.pk))
    except IntegrityError:
        found = _keyed(
            worker=worker, client_key=idempotency_key, amount_cents=amount_cents, currency=currency
        )
        if found is None:  # pragma: no cover - only the client-key constraint can fire here
            raise
        return found
    return payout


def _enqueue(payout_id: int) -> None:
    from ..tasks import payout_execute

    payout_execute.delay(payout_id)


def _finish(
    payout_id: int, *, transfer_id: str = "", failure: stripe_client.StripePermanentError | None = None
) -> Payout:
    """Phase 3: record the outcome once; a second call finds the payout final and returns it."""
    with transaction.atomic():
        payout = Payout.objects.select_for_update().get(pk=payout_id)
        if payout.status in (PayoutStatus.PAID, PayoutStatus.FAILED):
            return payout
        in_transit = platform_account(AccountKind.PAYOUTS_IN_TRANSIT, payout.currency)
        if failure is None:
            ledger_transfer(
                debit=in_transit,
                credit=platform_account(AccountKind.STRIPE_CLEARING, payout.currency),
                amount_cents=payout.amount_cents,
                idempotency_key=f"payout:{payout.pk}:settle",
                kind=EntryKind.PAYOUT_SETTLE,
                reference=f"payout:{payout.pk}",
            )
            payout.status, payout.stripe_transfer_id = PayoutStatus.PAID, transfer_id
            payout.save(update_fields=["status", "stripe_transfer_id", "updated_at"])
        else:
            payout_fail(payout=payout, code=failure.code or "stripe_refused", message=str(failure))
    return payout


def payout_fail(*, payout: Payout, code: str, message: str) -> None:
    """Return a payout's money to the worker and mark it failed. The caller holds the row lock.

    Only for payouts Stripe never executed (refused, or checked by hand by an admin)."""
    ledger_transfer(
        debit=platform_account(AccountKind.PAYOUTS_IN_TRANSIT, payout.currency),
        credit=worker_account(payout.worker_id, AccountKind.AVAILABLE, payout.currency),
        amount_cents=payout.amount_cents,
        idempotency_key=f"payout:{payout.pk}:reverse",
        kind=EntryKind.PAYOUT_REVERSE,
        reference=f"payout:{payout.pk}",
    )
    payout.status, payout.failure_code, payout.failure_message = PayoutStatus.FAILED, code[:100], message
    payout.save(update_fields=["status", "failure_code", "failure_message", "updated_at"])


def _stuck_age() -> timedelta:
    return timedelta(minutes=getattr(settings, "PAYOUT_STUCK_MINUTES", 15))


def _check_can_mark_failed(payout: Payout) -> None:
    if payout.status not in (PayoutStatus.PENDING, PayoutStatus.PROCESSING):
        raise Conflict(
            f"Payout {payout.pk} is already {payout.status}.",
            code="payout_final",
            detail={"payout_id": payout.pk, "status": payout.status},
        )
    if payout.status == PayoutStatus.PROCESSING and payout.updated_at > timezone.now() - _stuck_age():
        # An attempt may be waiting on Stripe right now; its transfer could land after our check.
        raise Conflict(
            f"Payout {payout.pk} is being sent to Stripe; try again once it has been stuck for "
            f"{int(_stuck_age().total_seconds() // 60)} minutes.",
            code="payout_in_flight",
            detail={"payout_id": payout.pk},
        )


def payout_mark_failed(*, payout_id: int, note: str) -> Payout:
    """An admin's verdict that Stripe never executed this payout: the money goes back to the worker.

    Only ``pending`` payouts and ``processing`` ones stuck for ``PAYOUT_STUCK_MINUTES`` (an attempt
    in flight could still transfer): Conflict ``payout_final`` / ``payout_in_flight`` otherwise.
    Stripe is asked first, outside any transaction, for a transfer made for this payout: if there is
    one, Conflict ``payout_transfer_exists`` (retrying the payout records it as paid); if Stripe
    cannot be reached, PaymentProviderUnavailable; if it refuses to answer, Conflict
    ``payout_check_refused``. The state checks are repeated under the row lock.
    Idempotent through the ledger key ``payout:<id>:reverse``.
    """
    payout = Payout.objects.get(pk=payout_id)
    _check_can_mark_failed(payout)
    try:
        transfer = stripe_client.transfer_find(
            destination=payout.destination,
            payout_id=str(payout.pk),
            created_gte=int(payout.created_at.timestamp()) - 3600,  # allow for clock skew
        )
    except stripe_client.StripeTransientError as exc:
        raise PaymentProviderUnavailable(
            "Stripe is unreachable, so the payout cannot be checked; nothing changed."
        ) from exc
    except stripe_client.StripePermanentError as exc:
        raise Conflict(
            "Stripe refused to list the payout's transfers, so it cannot be checked; nothing changed.",
            code="payout_check_refused",
            detail={"payout_id": payout.pk, "stripe_code": exc.code},
        ) from exc
    if transfer is not None:
        raise Conflict(
            f"Stripe made transfer {transfer['id']} for payout {payout.pk}: retry it to record it as paid.",
            code="payout_transfer_exists",
            detail={"payout_id": payout.pk, "transfer_id": transfer["id"]},
        )
    with transaction.atomic():
        payout = Payout.objects.select_for_update().get(pk=payout_id)
        _check_can_mark_failed(payout)
        payout_fail(payout=payout, code="marked_failed", message=note)
    return payout


def payouts_stuck(*, older_than: timedelta | None = None, now: datetime | None = None) -> list[int]:
    """Payouts still ``pending`` or ``processing`` whose row has not changed for
    ``PAYOUT_STUCK_MINUTES`` (default 15): their task was lost, gave up, or the worker died.

    ``pending`` counts too: it means the task enqueued after commit never ran. Every attempt bumps
    ``updated_at``, so a re-driven payout is not picked again until it has been stuck that long anew.
    """
    age = older_than or _stuck_age()
    cutoff = (now or timezone.now()) - age
    return list(
        Payout.objects.filter(
            status__in=[PayoutStatus.PENDING, PayoutStatus.PROCESSING], updated_at__lt=cutoff
        )
        .order_by("id")
        .values_list("id", flat=True)
    )


def payout_apply_transfer_reversal(*, transfer: dict[str, Any]) -> str:
    """Return reversed transfer money to the worker's available balance, at most once per cent.

    ``transfer.reversed`` carries Stripe's running ``amount_reversed``; only the part beyond what we
    applied (``reversed_cents``) moves, so duplicates and out-of-order partial reversals are no-ops.
    The money is back in our Stripe balance, so it moves clearing → worker available. A payout we
    have not recorded as paid yet raises EventNotReady, so the event is retried after phase 3.
    """
    raw = str((transfer.get("metadata") or {}).get("payout_id") or "")
    with transaction.atomic():
        payouts = Payout.objects.select_for_update()
        payout = (
            payouts.filter(pk=int(raw)).first()
            if raw.isdigit()
            else payouts.filter(stripe_transfer_id=transfer["id"]).first()
        )
        if payout is None:
            return f"ignored: no payout for transfer {transfer['id']}"
        if payout.status in (PayoutStatus.PENDING, PayoutStatus.PROCESSING):
            raise EventNotReady(f"payout {payout.pk} is not recorded as paid yet")
        if payout.status == PayoutStatus.FAILED:
            # We already returned the money for a transfer we believed failed; never twice.
            return f"ignored: payout {payout.pk} is failed"
        total = min(int(transfer.get("amount_reversed") or 0), payout.amount_cents)
        delta = total - payout.reversed_cents
        if delta <= 0:
            return f"payout {payout.pk}: reversal of {total} already applied"
        ledger_transfer(
            debit=platform_account(AccountKind.STRIPE_CLEARING, payout.currency),
            credit=worker_account(payout.worker_id, AccountKind.AVAILABLE, payout.currency),
            amount_cents=delta,
            idempotency_key=f"payout:{payout.pk}:reversed:{total}",
            kind=EntryKind.TRANSFER_REVERSAL,
            reference=f"payout:{payout.pk}",
        )
        payout.reversed_cents = total
        if total == payout.amount_cents:
            payout.status = PayoutStatus.REVERSED
        payout.save(update_fields=["reversed_cents", "status", "updated_at"])
    return f"payout {payout.pk}: {delta} back to available"


def payout_execute(*, payout_id: int) -> Payout:
    """Phases 2 and 3. Safe to run any number of times, concurrently too: every attempt sends the
    same Stripe idempotency key. Raises StripeTransientError (payout left ``processing``) so the
    task can retry."""
    with transaction.atomic():
        payout = Payout.objects.select_for_update().get(pk=payout_id)
        if payout.status in (PayoutStatus.PAID, PayoutStatus.FAILED):
            return payout
        payout.status, payout.attempts = PayoutStatus.PROCESSING, payout.attempts + 1
        payout.save(update_fields=["status", "attempts", "updated_at"])
    try:
        transfer = stripe_client.transfer_create(
            amount_cents=payout.amount_cents,
            currency=payout.currency,
            destination=payout.destination,
            metadata={"payout_id": str(payout.pk), "worker_id": str(payout.worker_id)},
            idempotency_key=payout.stripe_key,
        )
    except stripe_client.StripePermanentError as exc:
        if exc.code == "idempotency_error":
            # The key may already have moved money: never return it to the worker on this signal.
            raise
        return _finish(payout.pk, failure=exc)
    return _finish(payout.pk, transfer_id=transfer["id"])
