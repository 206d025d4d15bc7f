"""Payment states and account kinds, with the allowed transitions written beside them."""

from django.db import models


class OwnerKind(models.TextChoices):
    REQUESTER = "requester"
    WORKER = "worker"
    PLATFORM = "platform"


class AccountKind(models.TextChoices):
    """Requesters hold available + reserved, workers pending + available; the rest are the platform's.

    Platform accounts may go negative: ``stripe_clearing`` is the mirror of the money Stripe holds
    for us, so funding debits it (it goes below zero) and payouts and refunds credit it back.
    """

    AVAILABLE = "available"
    RESERVED = "reserved"
    PENDING = "pending"
    FEE_REVENUE = "fee_revenue"
    STRIPE_CLEARING = "stripe_clearing"
    PAYOUTS_IN_TRANSIT = "payouts_in_transit"
    REFUNDS = "refunds"


OWNER_ACCOUNT_KINDS: dict[str, frozenset[str]] = {
    OwnerKind.REQUESTER: frozenset({AccountKind.AVAILABLE, AccountKind.RESERVED}),
    OwnerKind.WORKER: frozenset({AccountKind.PENDING, AccountKind.AVAILABLE}),
    OwnerKind.PLATFORM: frozenset(
        {
            AccountKind.FEE_REVENUE,
            AccountKind.STRIPE_CLEARING,
            AccountKind.PAYOUTS_IN_TRANSIT,
            AccountKind.REFUNDS,
        }
    ),
}
# Only this platform account mirrors an outside balance and may be negative.
NEGATIVE_ALLOWED = frozenset({(OwnerKind.PLATFORM, AccountKind.STRIPE_CLEARING)})


class EntryKind(models.TextChoices):
    FUNDING = "funding"
    RESERVE = "reserve"
    RELEASE = "release"
    ACCEPT = "accept"
    FEE = "fee"
    HOLD_RELEASE = "hold_release"
    PAYOUT = "payout"
    PAYOUT_SETTLE = "payout_settle"
    PAYOUT_REVERSE = "payout_reverse"
    REFUND = "refund"
    REFUND_SETTLE = "refund_settle"
    REFUND_REVERSE = "refund_reverse"
    BONUS = "bonus"
    TRANSFER_REVERSAL = "transfer_reversal"
    ADJUSTMENT = "adjustment"


class FundingStatus(models.TextChoices):
    """created → open (session made) → succeeded (webhook credited); created/open → failed.

    A retried create resumes ``created`` with the same Stripe idempotency key.
    """

    CREATED = "created"
    OPEN = "open"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class PayoutStatus(models.TextChoices):
    """pending (reserved) → processing (Stripe called) → paid | failed (money back to available).

    pending    → processing, failed
    processing → processing (retry or requeue of a stuck one, same key), paid, failed
    paid       → reversed (``transfer.reversed`` for the whole amount; money back to available)
    failed, reversed → (final)
    """

    PENDING = "pending"
    PROCESSING = "processing"
    PAID = "paid"
    FAILED = "failed"
    REVERSED = "reversed"


PAYOUT_TRANSITIONS: dict[str, frozenset[str]] = {
    PayoutStatus.PENDING: frozenset({PayoutStatus.PROCESSING, PayoutStatus.FAILED}),
    PayoutStatus.PROCESSING: frozenset({PayoutStatus.PROCESSING, PayoutStatus.PAID, PayoutStatus.FAILED}),
    PayoutStatus.PAID: frozenset({PayoutStatus.REVERSED}),
    PayoutStatus.FAILED: frozenset(),
    PayoutStatus.REVERSED: frozenset(),
}


class RefundStatus(models.TextChoices):
    """pending (reserved) → processing (Stripe called) → succeeded | failed (back to available).

    pending    → processing, failed
    processing → processing (retry or requeue, same key ``refund:<id>``), succeeded, failed
    succeeded  → failed (Stripe reports the refund failed later: the money is back at Stripe)
    failed     → (final)
    """

    PENDING = "pending"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


REFUND_TRANSITIONS: dict[str, frozenset[str]] = {
    RefundStatus.PENDING: frozenset({RefundStatus.PROCESSING, RefundStatus.FAILED}),
    RefundStatus.PROCESSING: frozenset(
        {RefundStatus.PROCESSING, RefundStatus.SUCCEEDED, RefundStatus.FAILED}
    ),
    RefundStatus.SUCCEEDED: frozenset({RefundStatus.FAILED}),
    RefundStatus.FAILED: frozenset(),
}
