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

``assignment_payments_reconcile`` checks the other way round that every verdict and the ledger
agree: each accepted answer has its payment and no other answer has one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import BigIntegerField, CharField, Exists, F, OuterRef, Sum, Value
from django.db.models.functions import Cast, Concat, Greatest, Substr

from crowd.enums import AssignmentStatus
from crowd.models import Assignment, Worker
from payments.errors import InsufficientFunds
from payments.models import LedgerTransaction
from payments.money import fee_cents
from payments.services import escrow

from ..enums import BatchStatus
from ..models import Batch, Task

NOT_ENOUGH_BALANCE = "not_enough_balance"
ACCEPT_KEY_PREFIX = "accept:assignment:"


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


def accept_key(assignment_id: int) -> str:
    """The idempotency key of the posting that pays for an accepted answer."""
    return f"{ACCEPT_KEY_PREFIX}{assignment_id}"


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
            idempotency_key=accept_key(a.pk),
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


def assignment_payments_reconcile() -> list[str]:
    """Every answer whose payment disagrees with its verdict, as readable lines; ``[]`` when all agree.

    An accepted answer of a priced batch has its posting ``accept:assignment:<id>``: every way to
    ``accepted`` (review, QC rules, review modes, auto-accept, a reversal or an overturned appeal)
    goes through ``verdict_apply``, which pays gold and training answers alike; a batch priced 0
    posts nothing (``_pay``). No other answer has one: ``accepted`` has no way back, so a rejected
    answer was never paid, and a reversal pays only as it accepts. Bonuses have their own keys.
    Run by ``manage.py reconcile_ledger`` and the beat task (``LEDGER_RECONCILE_CHECKS``). On
    PostgreSQL, outside a caller's transaction, it reads one REPEATABLE READ snapshot, so a verdict
    committing mid-check is no false alarm.
    """
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            return _payments_mismatches()
    return _payments_mismatches()


def _payments_mismatches() -> list[str]:
    key = Concat(Value(ACCEPT_KEY_PREFIX), Cast(OuterRef("pk"), output_field=CharField()))
    unpaid = (
        Assignment.objects.filter(status=AssignmentStatus.ACCEPTED, batch__price_cents__gt=0)
        .filter(~Exists(LedgerTransaction.objects.filter(idempotency_key=key)))
        .order_by("pk")
        .values_list("pk", "batch_id")
    )
    problems = [
        f"assignment {pk} of batch {batch_id} is accepted but has no posting {accept_key(pk)}"
        for pk, batch_id in unpaid
    ]
    # From the postings' side (one primary-key probe each), so a posting whose answer is gone shows
    # too. The regex keeps the cast to an id safe whatever else a key with this prefix might hold.
    paid_id = Cast(Substr(OuterRef("idempotency_key"), len(ACCEPT_KEY_PREFIX) + 1), BigIntegerField())
    stray = list(
        LedgerTransaction.objects.filter(idempotency_key__regex=rf"^{ACCEPT_KEY_PREFIX}[0-9]+$")
        .filter(~Exists(Assignment.objects.filter(pk=paid_id, status=AssignmentStatus.ACCEPTED)))
        .order_by("pk")
        .values_list("idempotency_key", flat=True)
    )
    ids = [int(posting_key.removeprefix(ACCEPT_KEY_PREFIX)) for posting_key in stray]
    statuses = dict(Assignment.objects.filter(pk__in=ids).values_list("pk", "status"))
    for posting_key, assignment_id in zip(stray, ids, strict=True):
        if assignment_id in statuses:
            status = statuses[assignment_id]
            problems.append(f"assignment {assignment_id} is {status} but posting {posting_key} paid it")
        else:
            problems.append(f"posting {posting_key} paid assignment {assignment_id}, which does not exist")
    return problems
