"""Money: ledger accounts and append-only entries, funding, payouts, refunds and Stripe events.

Every amount is an integer number of minor units (``*_cents``) beside a three-letter currency.
Nothing here knows tasks or batches: callers pass references (``"batch:12"``) as plain strings.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from .enums import AccountKind, EntryKind, FundingStatus, OwnerKind, PayoutStatus, RefundStatus

PLATFORM_OWNER_ID = 0


class Account(models.Model):
    """One balance of one owner in one currency. ``balance_cents`` is a projection of the ledger:
    credits minus debits, changed only by ``payments.services.ledger`` under a row lock."""

    owner_kind = models.CharField(max_length=10, choices=OwnerKind.choices)
    owner_id = models.BigIntegerField(help_text="Requester or worker id; 0 for platform accounts.")
    kind = models.CharField(max_length=20, choices=AccountKind.choices)
    currency = models.CharField(max_length=3)
    balance_cents = models.BigIntegerField(default=0)
    allow_negative = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["owner_kind", "owner_id", "kind", "currency"], name="account_unique_owner_kind"
            ),
            models.CheckConstraint(
                condition=Q(allow_negative=True) | Q(balance_cents__gte=0), name="account_no_overdraft"
            ),
        ]

    def __str__(self) -> str:
        owner = "platform" if self.owner_kind == OwnerKind.PLATFORM else f"{self.owner_kind}:{self.owner_id}"
        return f"{owner}:{self.kind} ({self.currency})"


class LedgerTransaction(models.Model):
    """One atomic posting of one or more entries, made once per ``idempotency_key``."""

    idempotency_key = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=20, choices=EntryKind.choices)
    reference = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.idempotency_key


class LedgerEntry(models.Model):
    """Append-only: moves ``amount_cents`` out of ``debit_account`` into ``credit_account``."""

    transaction = models.ForeignKey(LedgerTransaction, on_delete=models.PROTECT, related_name="entries")
    debit_account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="debits")
    credit_account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="credits")
    amount_cents = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "ledger entries"
        constraints = [
            models.CheckConstraint(condition=Q(amount_cents__gt=0), name="entry_amount_positive"),
            models.CheckConstraint(
                condition=~Q(debit_account=F("credit_account")), name="entry_distinct_accounts"
            ),
        ]
        indexes = [
            models.Index(fields=["debit_account", "id"], name="entry_debit_account"),
            models.Index(fields=["credit_account", "id"], name="entry_credit_account"),
        ]

    def __str__(self) -> str:
        return f"entry {self.pk}: {self.amount_cents} {self.currency}"


class RequesterAccountState(models.Model):
    """Payment flags of a requester. A card chargeback freezes publishing, paying and refunds."""

    requester = models.OneToOneField(
        "marketplace.Requester", on_delete=models.CASCADE, related_name="payment_state"
    )
    is_frozen = models.BooleanField(default=False)
    frozen_reason = models.CharField(max_length=200, blank=True, default="")
    frozen_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"requester {self.requester_id} ({'frozen' if self.is_frozen else 'ok'})"


class RequesterFreezeEvent(models.Model):
    """One freeze or unfreeze of a requester's money movements: to which state, why and by whom
    (no user: the system, e.g. a chargeback webhook). Insert-only; ``RequesterAccountState`` holds
    the current flag."""

    requester = models.ForeignKey("marketplace.Requester", on_delete=models.PROTECT, related_name="+")
    is_frozen = models.BooleanField(help_text="The state it moved to.")
    reason = models.TextField()
    by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["requester", "id"], name="freeze_event_requester")]

    def __str__(self) -> str:
        return f"requester {self.requester_id} {'frozen' if self.is_frozen else 'unfrozen'}"

    def save(self, *args: object, **kwargs: object) -> None:
        if self.pk is not None:
            raise ValueError("Freeze events are insert-only.")
        super().save(*args, **kwargs)  # type: ignore[arg-type]


class FundingIntent(models.Model):
    """A requester's top-up. Its id keys the Stripe call (``funding:<id>``) and the ledger credit."""

    requester = models.ForeignKey("marketplace.Requester", on_delete=models.PROTECT, related_name="fundings")
    amount_cents = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=10, choices=FundingStatus.choices, default=FundingStatus.CREATED)
    client_key = models.CharField(max_length=200, blank=True, default="", help_text="Idempotency-Key")
    stripe_session_id = models.CharField(max_length=255, blank=True, default="")
    stripe_payment_intent_id = models.CharField(max_length=255, blank=True, default="")
    checkout_url = models.URLField(max_length=2000, blank=True, default="")
    refunded_cents = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    succeeded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount_cents__gt=0), name="funding_amount_positive"),
            models.CheckConstraint(
                condition=Q(refunded_cents__gte=0) & Q(refunded_cents__lte=F("amount_cents")),
                name="funding_refund_within_amount",
            ),
            models.UniqueConstraint(
                fields=["requester", "client_key"],
                condition=~Q(client_key=""),
                name="funding_unique_client_key",
            ),
        ]
        indexes = [
            models.Index(fields=["stripe_session_id"], name="funding_session"),
            models.Index(fields=["stripe_payment_intent_id"], name="funding_payment_intent"),
        ]

    def __str__(self) -> str:
        return f"funding {self.pk}: {self.amount_cents} {self.currency}"


class StripeEvent(models.Model):
    """A verified webhook delivery, stored once by Stripe's event id and processed by a task."""

    stripe_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    payload = models.JSONField()
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    outcome = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["id"], condition=Q(processed_at__isnull=True), name="stripe_event_unprocessed"
            )
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.stripe_id}"


class PayoutAccount(models.Model):
    """A worker's Stripe Connect (express) account; ready once Stripe enables transfers to it."""

    worker = models.OneToOneField("crowd.Worker", on_delete=models.CASCADE, related_name="payout_account")
    stripe_account_id = models.CharField(max_length=255, blank=True, default="")
    is_ready = models.BooleanField(default=False)
    stripe_state_at = models.BigIntegerField(
        default=0, help_text="`created` of the newest account.updated applied (older events are ignored)."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["stripe_account_id"],
                condition=~Q(stripe_account_id=""),
                name="payout_account_unique_stripe_id",
            )
        ]

    def __str__(self) -> str:
        return f"payout account of worker {self.worker_id}"


class Payout(models.Model):
    """A worker's withdrawal: reserved, then a Stripe Transfer keyed ``payout:<id>``."""

    worker = models.ForeignKey("crowd.Worker", on_delete=models.PROTECT, related_name="payouts")
    amount_cents = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=10, choices=PayoutStatus.choices, default=PayoutStatus.PENDING)
    client_key = models.CharField(max_length=200, blank=True, default="")
    destination = models.CharField(max_length=255)
    stripe_transfer_id = models.CharField(max_length=255, blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    failure_code = models.CharField(max_length=100, blank=True, default="")
    failure_message = models.TextField(blank=True, default="")
    reversed_cents = models.BigIntegerField(
        default=0,
        help_text="Returned to the worker by ``transfer.reversed`` events (Stripe's running total).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount_cents__gt=0), name="payout_amount_positive"),
            models.CheckConstraint(
                condition=Q(reversed_cents__gte=0) & Q(reversed_cents__lte=F("amount_cents")),
                name="payout_reversal_within_amount",
            ),
            models.UniqueConstraint(
                fields=["worker", "client_key"], condition=~Q(client_key=""), name="payout_unique_client_key"
            ),
        ]
        indexes = [
            # The requeue sweep looks for unfinished payouts by age.
            models.Index(
                fields=["updated_at"],
                condition=Q(status__in=["pending", "processing"]),
                name="payout_unfinished",
            ),
            models.Index(fields=["stripe_transfer_id"], name="payout_transfer"),
        ]

    def __str__(self) -> str:
        return f"payout {self.pk}: {self.amount_cents} {self.currency} ({self.status})"

    @property
    def stripe_key(self) -> str:
        return f"payout:{self.pk}"


class Refund(models.Model):
    """A requester's withdrawal of unspent funds back to the card of one funding.

    One refund request may be split over several fundings (newest first): one row per funding,
    all carrying the request's ``client_key``. The Stripe Refund is keyed ``refund:<id>``.
    """

    requester = models.ForeignKey("marketplace.Requester", on_delete=models.PROTECT, related_name="refunds")
    funding = models.ForeignKey(FundingIntent, on_delete=models.PROTECT, related_name="refunds")
    amount_cents = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=10, choices=RefundStatus.choices, default=RefundStatus.PENDING)
    client_key = models.CharField(max_length=200, blank=True, default="", help_text="Idempotency-Key")
    stripe_refund_id = models.CharField(max_length=255, blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    failure_code = models.CharField(max_length=100, blank=True, default="")
    failure_message = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount_cents__gt=0), name="refund_amount_positive"),
            models.UniqueConstraint(
                fields=["requester", "client_key", "funding"],
                condition=~Q(client_key=""),
                name="refund_unique_client_key",
            ),
        ]
        indexes = [
            models.Index(
                fields=["updated_at"],
                condition=Q(status__in=["pending", "processing"]),
                name="refund_unfinished",
            ),
        ]

    def __str__(self) -> str:
        return f"refund {self.pk}: {self.amount_cents} {self.currency} ({self.status})"

    @property
    def stripe_key(self) -> str:
        return f"refund:{self.pk}"


class Bonus(models.Model):
    """A requester's bonus to a worker who worked for them: ``amount_cents`` to the worker's pending
    balance plus ``fee_cents`` to the platform, both out of the requester's available balance in
    one posting keyed ``bonus:<id>``. Insert-only."""

    requester = models.ForeignKey("marketplace.Requester", on_delete=models.PROTECT, related_name="bonuses")
    worker = models.ForeignKey("crowd.Worker", on_delete=models.PROTECT, related_name="bonuses")
    amount_cents = models.BigIntegerField()
    fee_cents = models.BigIntegerField(default=0)
    currency = models.CharField(max_length=3)
    reason = models.TextField()
    client_key = models.CharField(max_length=200, blank=True, default="", help_text="Idempotency-Key")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "bonuses"
        constraints = [
            models.CheckConstraint(condition=Q(amount_cents__gt=0), name="bonus_amount_positive"),
            models.CheckConstraint(condition=Q(fee_cents__gte=0), name="bonus_fee_not_negative"),
            models.UniqueConstraint(
                fields=["requester", "client_key"],
                condition=~Q(client_key=""),
                name="bonus_unique_client_key",
            ),
        ]
        indexes = [models.Index(fields=["worker", "id"], name="bonus_worker")]

    def __str__(self) -> str:
        return f"bonus {self.pk}: {self.amount_cents} {self.currency} to worker {self.worker_id}"
