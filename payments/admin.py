"""Admin: money rows are read-only here; state changes go through the services (actions)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from .enums import PayoutStatus
from .models import (
    Account,
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
    list_display = ["id", "requester", "funding", "amount_cents", "currency", "status", "created_at"]


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
    actions = ["retry"]

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
