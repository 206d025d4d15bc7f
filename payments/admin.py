"""Admin: money rows are read-only here; state changes go through the services (actions)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from marketplace.errors import ApplicationError

from .enums import PayoutStatus, RefundStatus
from .models import (
    Account,
    Bonus,
    FundingIntent,
    LedgerEntry,
    LedgerTransaction,
    Payout,
    PayoutAccount,
    Refund,
    RequesterAccountState,
    StripeEvent,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Viewable, never added, changed or deleted by hand: the ledger is append-only."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = ["id", "owner_kind", "owner_id", "kind", "currency", "balance_cents"]
    list_filter = ["owner_kind", "kind", "currency"]
    search_fields = ["owner_id"]


class LedgerEntryInline(admin.TabularInline):
    model = LedgerEntry
    fields = ["debit_account", "credit_account", "amount_cents", "currency"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(LedgerTransaction)
class LedgerTransactionAdmin(ReadOnlyAdmin):
    list_display = ["id", "kind", "idempotency_key", "reference", "created_at"]
    list_filter = ["kind"]
    search_fields = ["idempotency_key", "reference"]
    inlines = [LedgerEntryInline]


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "transaction",
        "debit_account",
        "credit_account",
        "amount_cents",
        "currency",
        "created_at",
    ]
    list_select_related = ["transaction", "debit_account", "credit_account"]


@admin.register(FundingIntent)
class FundingIntentAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "requester",
        "amount_cents",
        "currency",
        "status",
        "stripe_session_id",
        "created_at",
    ]
    list_filter = ["status"]


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "stripe_id", "type", "received_at", "processed_at", "attempts", "outcome"]
    list_filter = ["type"]
    search_fields = ["stripe_id"]


@admin.register(PayoutAccount)
class PayoutAccountAdmin(ReadOnlyAdmin):
    list_display = ["id", "worker", "stripe_account_id", "is_ready", "created_at"]


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "requester",
        "funding",
        "amount_cents",
        "currency",
        "status",
        "attempts",
        "failure_code",
        "updated_at",
    ]
    list_filter = ["status"]
    actions = ["retry"]

    @admin.action(description="Retry the Stripe refund (same idempotency key)")
    def retry(self, request: HttpRequest, queryset: QuerySet[Refund]) -> None:
        from .tasks import refund_execute

        ids = list(
            queryset.filter(status__in=[RefundStatus.PENDING, RefundStatus.PROCESSING]).values_list(
                "id", flat=True
            )
        )
        for refund_id in ids:
            transaction.on_commit(lambda refund_id=refund_id: refund_execute.delay(refund_id))
        self.message_user(request, f"Queued {len(ids)} refund(s).", messages.SUCCESS)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_staff

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in Refund._meta.fields]


@admin.register(Bonus)
class BonusAdmin(ReadOnlyAdmin):
    list_display = ["id", "requester", "worker", "amount_cents", "fee_cents", "currency", "created_at"]
    search_fields = ["reason"]


@admin.register(Payout)
class PayoutAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "worker",
        "amount_cents",
        "currency",
        "status",
        "attempts",
        "failure_code",
        "updated_at",
    ]
    list_filter = ["status"]
    actions = ["retry", "mark_failed"]

    @admin.action(description="Retry the Stripe transfer (same idempotency key)")
    def retry(self, request: HttpRequest, queryset: QuerySet[Payout]) -> None:
        from .tasks import payout_execute

        ids = list(
            queryset.filter(status__in=[PayoutStatus.PENDING, PayoutStatus.PROCESSING]).values_list(
                "id", flat=True
            )
        )
        for payout_id in ids:
            transaction.on_commit(lambda payout_id=payout_id: payout_execute.delay(payout_id))
        self.message_user(request, f"Queued {len(ids)} payout(s).", messages.SUCCESS)

    @admin.action(description="Mark failed, returning the money to the worker (if Stripe has no transfer)")
    def mark_failed(self, request: HttpRequest, queryset: QuerySet[Payout]) -> None:
        from .services.payouts import payout_mark_failed

        done, refused = [], []
        for payout_id in queryset.order_by("id").values_list("id", flat=True):
            try:
                payout_mark_failed(payout_id=payout_id, note=f"Marked failed in the admin by {request.user}.")
                done.append(payout_id)
            except ApplicationError as exc:  # final, in flight, transferred, or Stripe unreachable
                refused.append(f"{payout_id}: {exc.message}")
        if done:
            self.message_user(request, f"Marked {len(done)} payout(s) failed.", messages.SUCCESS)
        if refused:
            self.message_user(request, "Not changed: " + "; ".join(refused), messages.WARNING)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Needed for actions to show; there are no editable fields.
        return request.user.is_staff

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in Payout._meta.fields]


@admin.register(RequesterAccountState)
class RequesterAccountStateAdmin(admin.ModelAdmin):
    """Frozen requesters; an admin may unfreeze once a chargeback is settled (not a money row)."""

    list_display = ["id", "requester", "is_frozen", "frozen_reason", "frozen_at"]
    list_filter = ["is_frozen"]
    fields = ["requester", "is_frozen", "frozen_reason", "frozen_at"]
    readonly_fields = ["requester", "frozen_reason", "frozen_at"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
