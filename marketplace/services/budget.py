"""A batch's money: what publishing reserves, what an accepted answer costs, what close gives back.

The ledger (``payments``) knows accounts and amounts, never tasks; this module is the bridge. It
keeps two running totals on the batch row, ``reserved_cents`` (moved from the requester's
available balance into their reserve for this batch) and ``spent_cents`` (paid out of it for
accepted answers), always changed under the batch's row lock and in the same transaction as the
ledger postings, whose idempotency keys are derived from the batch and assignment rows.

- Publishing, and adding tasks to a published batch, reserves ``(price + fee) * sum(overlap)`` of the
  regular tasks; too little available money is refused with 409 ``insufficient_funds`` and the
  shortfall, and nothing changes.
- Accepting an answer (gold ones too: workers cannot tell them apart, so they are paid alike) pays
  the price to the worker's pending balance and the fee to the platform, out of the reserve. What
  the reserve does not cover (gold answers, an overlap grown by a reversed rejection) is topped up
  from available at that moment; when that fails too, the verdict is refused and the batch pauses
  with ``pause_reason = "not_enough_balance"``.
- Closing returns ``reserved - spent`` to available.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Sum, Value
from django.db.models.functions import Greatest

from crowd.models import Worker
from payments.errors import InsufficientFunds
from payments.money import fee_cents
from payments.services import escrow

from ..enums import BatchStatus
from ..models import Batch, Task

if TYPE_CHECKING:
    from crowd.models import Assignment

NOT_ENOUGH_BALANCE = "not_enough_balance"


def answer_cost(batch: Batch) -> tuple[int, int]:
    """(price to the worker, platform fee) of one accepted answer."""
    return batch.price_cents, fee_cents(batch.price_cents, settings.PLATFORM_FEE_BPS)


def batch_required_cents(batch: Batch) -> int:
    """What the batch's regular answers cost in all: ``(price + fee) * sum(overlap)``; with dynamic
    overlap every task may grow to ``max_overlap``, so that is what is counted (issue 4)."""
    per_task: Any = F("overlap")
    if batch.max_overlap is not None:
        per_task = Greatest(F("overlap"), Value(batch.max_overlap))
    answers = Task.objects.filter(batch=batch, is_gold=False).aggregate(n=Sum(per_task))["n"] or 0
    price, fee = answer_cost(batch)
    return answers * (price + fee)


def batch_reserve_required(*, batch: Batch) -> int:
    """Top the batch's reserve up to what its tasks need. Call with the batch row locked, inside
    the transaction that publishes it or adds its tasks. Returns the cents newly reserved.

    Raises 409 ``insufficient_funds`` (detail: ``shortfall_cents``) or ``requester_frozen``.
    """
    escrow.requester_check_not_frozen(requester_id=batch.project.requester_id)
    required = batch_required_cents(batch)
    delta = required - batch.reserved_cents
    if delta <= 0:
        return 0
    escrow.reserve(
        requester=batch.project.requester,
        amount_cents=delta,
        idempotency_key=f"reserve:batch:{batch.pk}:{required}",
        currency=batch.currency,
        reference=f"batch:{batch.pk}",
    )
    batch.reserved_cents = required
    Batch.objects.filter(pk=batch.pk).update(reserved_cents=required)
    return delta


def batch_pay_accepted(assignments: Sequence[Assignment]) -> None:
    """Pay for answers that have just been accepted, inside the verdict's transaction.

    One ledger posting per answer, keyed by the assignment (an answer is accepted at most once:
    ``accepted`` has no way back). Locks each batch row while it pays from its reserve.
    """
    by_batch: dict[int, list[Assignment]] = {}
    for a in assignments:
        by_batch.setdefault(a.batch_id, []).append(a)
    for batch_id in sorted(by_batch):
        try:
            _pay(batch_id, by_batch[batch_id])
        except InsufficientFunds as exc:
            exc.batch_id = batch_id  # type: ignore[attr-defined]  # which batch to pause
            raise


def _pay(batch_id: int, rows: list[Assignment]) -> None:
    """Pay ``rows`` (accepted answers of one batch) from its reserve, topping it up if short."""
    batch = Batch.objects.select_for_update(no_key=True).select_related("project__requester").get(pk=batch_id)
    price, fee = answer_cost(batch)
    cost = (price + fee) * len(rows)
    if cost == 0:
        return
    requester = batch.project.requester
    left = batch.reserved_cents - batch.spent_cents
    if left < cost:
        escrow.reserve(
            requester=requester,
            amount_cents=cost - left,
            idempotency_key=f"topup:batch:{batch.pk}:{batch.spent_cents}",
            currency=batch.currency,
            reference=f"batch:{batch.pk}",
        )
        batch.reserved_cents += cost - left
    for a in rows:
        escrow.pay_worker_for_accept(
            requester=requester,
            worker=Worker(pk=a.worker_id),
            price_cents=price,
            fee_cents=fee,
            idempotency_key=f"accept:assignment:{a.pk}",
            currency=batch.currency,
            reference=f"assignment:{a.pk}",
        )
    batch.spent_cents += cost
    Batch.objects.filter(pk=batch.pk).update(
        reserved_cents=batch.reserved_cents, spent_cents=batch.spent_cents
    )


def batch_release_unspent(*, batch: Batch) -> int:
    """At close: give ``reserved - spent`` back to the requester's available balance. Call with
    the batch row locked. Returns the cents released."""
    unspent = batch.reserved_cents - batch.spent_cents
    if unspent <= 0:
        return 0
    escrow.release_reserve(
        requester=batch.project.requester,
        amount_cents=unspent,
        idempotency_key=f"release:batch:{batch.pk}:{batch.reserved_cents}",
        currency=batch.currency,
        reference=f"batch:{batch.pk}",
    )
    batch.reserved_cents = batch.spent_cents
    Batch.objects.filter(pk=batch.pk).update(reserved_cents=batch.reserved_cents)
    return unspent


def batch_pause_for_funds(*, batch_id: int) -> bool:
    """Pause an open batch whose reserve ran out (after the failed transaction rolled back)."""
    with transaction.atomic():
        batch = Batch.objects.select_for_update().get(pk=batch_id)
        if batch.status != BatchStatus.OPEN:
            return False
        batch.status, batch.pause_reason = BatchStatus.PAUSED, NOT_ENOUGH_BALANCE
        batch.save(update_fields=["status", "pause_reason", "updated_at"])
    return True
