"""Escrow between requesters and workers: reserve, release, pay for an accepted answer, and the
hold period after which a worker's pending earnings become withdrawable.

Callers (batch publish/close, answer review) pass their own idempotency keys, derived from their
row ids, e.g. ``reserve:batch:12:v1`` or ``accept:assignment:345``; a retried call is a no-op.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Sum
from django.utils import timezone

from crowd.models import Worker
from marketplace.errors import Conflict, ValidationFailed
from marketplace.models import Requester

from ..enums import AccountKind, EntryKind, OwnerKind
from ..models import Account, LedgerEntry, LedgerTransaction, RequesterAccountState, RequesterFreezeEvent
from .ledger import Leg, ledger_post, ledger_transfer, platform_account, requester_account, worker_account


def requester_is_frozen(*, requester_id: int) -> bool:
    return RequesterAccountState.objects.filter(requester_id=requester_id, is_frozen=True).exists()


def requester_check_not_frozen(*, requester_id: int) -> None:
    """Conflict if a chargeback froze this requester's money (publishing, paying, refunds)."""
    if requester_is_frozen(requester_id=requester_id):
        raise Conflict(
            "Your account is frozen while a card dispute is open; contact support.", code="requester_frozen"
        )


def _reason_required(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise ValidationFailed("A reason is required.", detail={"reason": ["Required."]})
    return reason


def requester_freeze(
    *, requester_id: int, reason: str, by_user_id: int | None = None, refuse_if_frozen: bool = False
) -> RequesterAccountState:
    """Freeze a requester's money movements, recording why and by whom (no user: the system) in a
    ``RequesterFreezeEvent``. Idempotent: an already frozen state is kept as is, with no new event,
    unless ``refuse_if_frozen`` (an admin's explicit freeze) makes that 409 ``requester_frozen``."""
    reason = _reason_required(reason)
    with transaction.atomic():
        state, _ = RequesterAccountState.objects.select_for_update().get_or_create(requester_id=requester_id)
        if state.is_frozen:
            if refuse_if_frozen:
                raise Conflict(
                    f"Requester {requester_id} is already frozen: {state.frozen_reason}",
                    code="requester_frozen",
                )
            return state
        now = timezone.now()
        state.is_frozen, state.frozen_reason, state.frozen_at = True, reason[:200], now
        state.save(update_fields=["is_frozen", "frozen_reason", "frozen_at"])
        RequesterFreezeEvent.objects.create(
            requester_id=requester_id, is_frozen=True, reason=reason, by_user_id=by_user_id, created_at=now
        )
    return state


def requester_unfreeze(*, requester_id: int, reason: str, by_user_id: int) -> RequesterAccountState:
    """Let a frozen requester move money again (once the dispute is settled), recording why and by
    whom in a ``RequesterFreezeEvent``. ``frozen_reason``/``frozen_at`` keep describing the last
    freeze. 409 ``requester_not_frozen`` if not frozen; 400 without a reason."""
    reason = _reason_required(reason)
    with transaction.atomic():
        state = RequesterAccountState.objects.select_for_update().filter(requester_id=requester_id).first()
        if state is None or not state.is_frozen:
            raise Conflict(f"Requester {requester_id} is not frozen.", code="requester_not_frozen")
        state.is_frozen = False
        state.save(update_fields=["is_frozen"])
        RequesterFreezeEvent.objects.create(
            requester_id=requester_id,
            is_frozen=False,
            reason=reason,
            by_user_id=by_user_id,
            created_at=timezone.now(),
        )
    return state


def reserve(
    *,
    requester: Requester,
    amount_cents: int,
    idempotency_key: str,
    currency: str = "USD",
    reference: str = "",
) -> LedgerTransaction:
    """Move money from the requester's available balance into their reserve.

    Raises InsufficientFunds (409, with ``shortfall_cents``) when available is too low and
    Conflict ``requester_frozen`` during a chargeback.
    """
    requester_check_not_frozen(requester_id=requester.pk)
    return ledger_transfer(
        debit=requester_account(requester.pk, AccountKind.AVAILABLE, currency),
        credit=requester_account(requester.pk, AccountKind.RESERVED, currency),
        amount_cents=amount_cents,
        idempotency_key=idempotency_key,
        kind=EntryKind.RESERVE,
        reference=reference,
    )


def release_reserve(
    *,
    requester: Requester,
    amount_cents: int,
    idempotency_key: str,
    currency: str = "USD",
    reference: str = "",
) -> LedgerTransaction:
    """Return unspent reserve to the requester's available balance (e.g. at batch close).

    Allowed while frozen: it only moves the requester's own money between their two accounts.
    """
    return ledger_transfer(
        debit=requester_account(requester.pk, AccountKind.RESERVED, currency),
        credit=requester_account(requester.pk, AccountKind.AVAILABLE, currency),
        amount_cents=amount_cents,
        idempotency_key=idempotency_key,
        kind=EntryKind.RELEASE,
        reference=reference,
    )


def pay_worker_for_accept(
    *,
    requester: Requester,
    worker: Worker,
    price_cents: int,
    fee_cents: int,
    idempotency_key: str,
    currency: str = "USD",
    reference: str = "",
) -> LedgerTransaction:
    """One posting out of the requester's reserve: ``price_cents`` to the worker's pending balance
    and ``fee_cents`` (may be 0) to the platform's fee revenue. Both legs or neither."""
    requester_check_not_frozen(requester_id=requester.pk)
    reserved = requester_account(requester.pk, AccountKind.RESERVED, currency)
    legs = [Leg(reserved, worker_account(worker.pk, AccountKind.PENDING, currency), price_cents)]
    if fee_cents:
        legs.append(Leg(reserved, platform_account(AccountKind.FEE_REVENUE, currency), fee_cents))
    return ledger_post(legs=legs, idempotency_key=idempotency_key, kind=EntryKind.ACCEPT, reference=reference)


def pending_to_available_sweep(*, now: datetime | None = None) -> int:
    """Make pending earnings older than EARNINGS_HOLD_DAYS available; returns cents moved.

    For each worker pending account: matured = credits up to the cutoff, released = earlier
    hold releases; the difference (capped at the balance) moves. The key names the newest matured
    entry, so re-running (or two sweeps racing) moves nothing twice.
    """
    cutoff = (now or timezone.now()) - timedelta(days=settings.EARNINGS_HOLD_DAYS)
    moved = 0
    pending_ids = Account.objects.filter(owner_kind=OwnerKind.WORKER, kind=AccountKind.PENDING).values_list(
        "id", flat=True
    )
    for account_id in list(pending_ids):
        # The lock makes the read of "released so far" and the release one step, so sweeps racing
        # with different cut-offs cannot both release the same earnings.
        with transaction.atomic():
            pending = Account.objects.select_for_update().get(pk=account_id)
            matured = LedgerEntry.objects.filter(
                credit_account_id=account_id, created_at__lte=cutoff
            ).aggregate(total=Sum("amount_cents"), newest=Max("id"))
            if not matured["total"]:
                continue
            released = (
                LedgerEntry.objects.filter(
                    debit_account_id=account_id, transaction__kind=EntryKind.HOLD_RELEASE
                ).aggregate(total=Sum("amount_cents"))["total"]
                or 0
            )
            amount = min(matured["total"] - released, pending.balance_cents)
            if amount <= 0:
                continue
            ledger_transfer(
                debit=pending,
                credit=worker_account(pending.owner_id, AccountKind.AVAILABLE, pending.currency),
                amount_cents=amount,
                idempotency_key=f"hold-release:{account_id}:{matured['newest']}",
                kind=EntryKind.HOLD_RELEASE,
            )
            moved += amount
    return moved
