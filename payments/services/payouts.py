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

from django.conf import settings
from django.db import IntegrityError, transaction

from crowd.models import Worker
from marketplace.errors import Conflict, ValidationFailed

from .. import stripe_client
from ..enums import AccountKind, EntryKind, PayoutStatus
from ..errors import PaymentProviderUnavailable
from ..models import Payout, PayoutAccount
from ..money import SUPPORTED_CURRENCIES
from .ledger import ledger_transfer, platform_account, worker_account


def payout_account_onboard(*, worker: Worker) -> tuple[PayoutAccount, str]:
    """The worker's Connect account (created once, key ``payout-account:<row id>``) and a fresh
    onboarding link. Raises PaymentProviderUnavailable when Stripe cannot be reached."""
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
