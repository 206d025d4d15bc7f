"""Bonuses: a requester pays extra to a worker who worked for them, with a reason; the fee applies.

One posting keyed ``bonus:<id>`` out of the requester's available balance: the bonus to the
worker's pending balance (so the hold period applies, as for earnings) and the platform fee at
``PLATFORM_FEE_BPS`` on top to fee revenue. Both legs or neither.
"""

from __future__ import annotations

from django.conf import settings
from django.db import IntegrityError, transaction

from crowd.models import Assignment, Worker
from marketplace.errors import Conflict, NotFound, ValidationFailed
from marketplace.models import Requester
from marketplace.selectors import worker_pseudonym

from ..enums import AccountKind, EntryKind
from ..models import Bonus
from ..money import SUPPORTED_CURRENCIES, fee_cents
from .escrow import requester_check_not_frozen
from .ledger import Leg, ledger_post, platform_account, requester_account, worker_account

REASON_MAX_LENGTH = 1000


def worker_ids_worked_for(*, requester_id: int) -> list[int]:
    """Workers who answered at least one task of the requester's batches (read-only on crowd)."""
    return list(
        Assignment.objects.filter(batch__project__requester_id=requester_id, submitted_at__isnull=False)
        .values_list("worker_id", flat=True)
        .distinct()
        .order_by("worker_id")
    )


def worker_for_bonus(*, requester: Requester, worker_id: int | None = None, pseudonym: str = "") -> Worker:
    """The worker named by id or by the requester's pseudonym for them, if they worked for the
    requester; NotFound otherwise (also for workers that exist, so nothing leaks)."""
    if worker_id is not None:
        known = Assignment.objects.filter(
            batch__project__requester=requester, worker_id=worker_id, submitted_at__isnull=False
        ).exists()
        match = worker_id if known else None
    else:
        match = next(
            (
                candidate
                for candidate in worker_ids_worked_for(requester_id=requester.pk)
                if worker_pseudonym(requester_id=requester.pk, worker_id=candidate) == pseudonym
            ),
            None,
        )
    if match is None:
        raise NotFound("No worker by that name has worked for you.", code="worker_not_found")
    return Worker.objects.get(pk=match)


def _keyed(
    *, requester: Requester, client_key: str, worker: Worker, amount_cents: int, currency: str, reason: str
) -> Bonus | None:
    if not client_key:
        return None
    found = Bonus.objects.filter(requester=requester, client_key=client_key).first()
    if found is not None and (found.worker_id, found.amount_cents, found.currency, found.reason) != (
        worker.pk,
        amount_cents,
        currency,
        reason,
    ):
        raise Conflict(
            "This Idempotency-Key was used for a different bonus.",
            code="idempotency_key_reused",
            detail={"bonus_id": found.pk},
        )
    return found


def bonus_pay(
    *,
    requester: Requester,
    worker: Worker,
    amount_cents: int,
    reason: str,
    currency: str = "USD",
    idempotency_key: str = "",
) -> Bonus:
    """Pay a bonus once. Refusals change nothing.

    400 for a bad amount (above ``BONUS_MAXIMUM_CENTS``, default 100 000), currency or an empty
    reason; 409 ``requester_frozen`` during a chargeback; 409 ``insufficient_funds`` with
    ``shortfall_cents`` when available cannot cover bonus plus fee. The worker must come from
    ``worker_for_bonus``. The same Idempotency-Key returns the first bonus.
    """
    maximum = getattr(settings, "BONUS_MAXIMUM_CENTS", 100_000)
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int) or not 0 < amount_cents <= maximum:
        raise ValidationFailed(
            "Invalid amount.", detail={"amount_cents": [f"Must be an integer from 1 to {maximum}."]}
        )
    if currency not in SUPPORTED_CURRENCIES:
        raise ValidationFailed(
            "Unsupported currency.",
            detail={"currency": [f"Choose one of: {', '.join(SUPPORTED_CURRENCIES)}."]},
        )
    reason = reason.strip()
    if not reason or len(reason) > REASON_MAX_LENGTH:
        raise ValidationFailed(
            "A reason is required.", detail={"reason": [f"Give 1 to {REASON_MAX_LENGTH} characters."]}
        )
    requester_check_not_frozen(requester_id=requester.pk)
    keyed = {
        "requester": requester,
        "client_key": idempotency_key,
        "worker": worker,
        "amount_cents": amount_cents,
        "currency": currency,
        "reason": reason,
    }
    found = _keyed(**keyed)
    if found is not None:
        return found
    fee = fee_cents(amount_cents, settings.PLATFORM_FEE_BPS)
    available = requester_account(requester.pk, AccountKind.AVAILABLE, currency)
    legs_to = [(worker_account(worker.pk, AccountKind.PENDING, currency), amount_cents)]
    if fee:
        legs_to.append((platform_account(AccountKind.FEE_REVENUE, currency), fee))
    try:
        with transaction.atomic():
            bonus = Bonus.objects.create(
                requester=requester,
                worker=worker,
                amount_cents=amount_cents,
                fee_cents=fee,
                currency=currency,
                reason=reason,
                client_key=idempotency_key,
            )
            ledger_post(
                legs=[Leg(available, account, amount) for account, amount in legs_to],
                idempotency_key=f"bonus:{bonus.pk}",
                kind=EntryKind.BONUS,
                reference=f"bonus:{bonus.pk}",
            )
    except IntegrityError:
        found = _keyed(**keyed)
        if found is None:  # pragma: no cover - only the client-key constraint can fire here
            raise
        return found
    return bonus
