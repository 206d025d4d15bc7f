"""Admin: money rows are read-only here; state changes go through the services (actions).

Payouts are retried or marked failed, and requesters frozen or unfrozen (also from the requester
admin), each by the same service the rest of the code uses, so the ledger postings and the freeze
events are the same; nothing is typed into a money or state field.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from marketplace.admin_actions import ActionsOnlyAdmin, ReadOnlyAdmin, confirm_and_apply

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
    RequesterFreezeEvent,
    StripeEvent,
)
from .services.escrow import requester_freeze, requester_unfreeze
from .services.payouts import payout_mark_failed


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
    list_select_related = ["requester__user"]


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "stripe_id", "type", "received_at", "processed_at", "attempts", "outcome"]
    list_filter = ["type"]
    search_fields = ["stripe_id"]


@admin.register(PayoutAccount)
class PayoutAccountAdmin(ReadOnlyAdmin):
    list_display = ["id", "worker", "stripe_account_id", "is_ready", "created_at"]
    list_select_related = ["worker__user"]


@admin.register(Refund)
class RefundAdmin(ActionsOnlyAdmin):
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
    list_select_related = ["requester__user", "funding"]
    actions = ["retry"]

    @admin.action(description="Retry the Stripe refund (same idempotency key)", permissions=["change"])
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


@admin.register(Bonus)
class BonusAdmin(ReadOnlyAdmin):
    list_display = ["id", "requester", "worker", "amount_cents", "fee_cents", "currency", "created_at"]
    list_select_related = ["requester__user", "worker__user"]
    search_fields = ["reason"]


@admin.register(Payout)
class PayoutAdmin(ActionsOnlyAdmin):
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
    list_select_related = ["worker__user"]
    actions = ["retry", "mark_failed"]

    @admin.action(description="Retry the Stripe transfer (same idempotency key)", permissions=["change"])
    def retry(self, request: HttpRequest, queryset: QuerySet[Payout]) -> None:
        """Queue ``payout_execute`` (as ``payout_request`` does) for the unfinished payouts; the
        others are reported, not sent."""
        from .tasks import payout_execute

        unfinished = [PayoutStatus.PENDING, PayoutStatus.PROCESSING]
        ids = list(queryset.filter(status__in=unfinished).order_by("id").values_list("id", flat=True))
        for payout_id in ids:
            transaction.on_commit(lambda payout_id=payout_id: payout_execute.delay(payout_id))
        self.message_user(request, f"Queued {len(ids)} payout(s).", messages.SUCCESS)
        final = queryset.exclude(status__in=unfinished).order_by("id").values_list("id", "status")
        if final:
            self.message_user(
                request,
                "Not queued: " + "; ".join(f"{pk}: Payout {pk} is already {status}." for pk, status in final),
                messages.ERROR,
            )

    @admin.action(
        description="Mark failed, returning the money to the worker (asks for a reason)",
        permissions=["change"],
    )
    def mark_failed(self, request: HttpRequest, queryset: QuerySet[Payout]) -> TemplateResponse | None:
        return confirm_and_apply(
            self,
            request,
            queryset,
            action="mark_failed",
            title="Mark failed",
            explanation=(
                "Stripe is asked first: a payout it did transfer is refused (retry it instead). The "
                "others go back to their worker's available balance."
            ),
            call=lambda payout, data: payout_mark_failed(
                payout_id=payout.pk,
                note=f"Marked failed in the admin by {request.user.email}: {data['reason']}",
            ),
            done="Marked {n} payout(s) failed.",
        )


def _requester_id(row: Any) -> int:
    """The requester of a selected row: a ``RequesterAccountState`` or a ``Requester``."""
    return row.requester_id if isinstance(row, RequesterAccountState) else row.pk


@admin.action(description="Freeze money movements (asks for a reason)", permissions=["change"])
def freeze(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Any]
) -> TemplateResponse | None:
    return confirm_and_apply(
        modeladmin,
        request,
        queryset,
        action="freeze",
        title="Freeze",
        explanation="The requesters can no longer publish, pay for answers, send bonuses or refund.",
        call=lambda row, data: requester_freeze(
            requester_id=_requester_id(row),
            reason=data["reason"],
            by_user_id=request.user.pk,
            refuse_if_frozen=True,
        ),
        done="Froze {n} requester(s).",
    )


@admin.action(description="Unfreeze money movements (asks for a reason)", permissions=["change"])
def unfreeze(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Any]
) -> TemplateResponse | None:
    return confirm_and_apply(
        modeladmin,
        request,
        queryset,
        action="unfreeze",
        title="Unfreeze",
        explanation="The requesters can move money again; batches paused meanwhile stay paused.",
        call=lambda row, data: requester_unfreeze(
            requester_id=_requester_id(row), reason=data["reason"], by_user_id=request.user.pk
        ),
        done="Unfroze {n} requester(s).",
    )


@admin.register(RequesterAccountState)
class RequesterAccountStateAdmin(ActionsOnlyAdmin):
    """Frozen requesters. The flag moves only through the freeze and unfreeze actions, each with a
    reason kept in a ``RequesterFreezeEvent``."""

    list_display = ["id", "requester", "is_frozen", "frozen_reason", "frozen_at"]
    list_filter = ["is_frozen"]
    list_select_related = ["requester__user"]
    fields = ["requester", "is_frozen", "frozen_reason", "frozen_at"]
    readonly_fields = fields
    actions = [freeze, unfreeze]


@admin.register(RequesterFreezeEvent)
class RequesterFreezeEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "requester", "is_frozen", "reason", "by_user", "created_at"]
    list_filter = ["is_frozen"]
    list_select_related = ["requester__user", "by_user"]
