"""Permission-aware reads of money: a caller only ever sees their own accounts and rows."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from crowd.models import Worker
from marketplace.errors import NotFound
from marketplace.models import Requester

from .enums import OWNER_ACCOUNT_KINDS, OwnerKind
from .models import Account, Bonus, LedgerEntry, Payout, Refund


def accounts_of(*, requester: Requester | None, worker: Worker | None) -> list[Account]:
    q = Q(pk__in=[])
    if requester is not None:
        q |= Q(owner_kind=OwnerKind.REQUESTER, owner_id=requester.pk)
    if worker is not None:
        q |= Q(owner_kind=OwnerKind.WORKER, owner_id=worker.pk)
    return list(Account.objects.filter(q).order_by("id"))


def balances_for(
    *, owner_kind: str, owner_id: int, accounts: list[Account], currency: str = "USD"
) -> dict[str, int]:
    """``{"<kind>_cents": balance}`` for every account kind the owner has, 0 where none exists yet."""
    mine = {
        a.kind: a.balance_cents for a in accounts if a.owner_kind == owner_kind and a.owner_id == owner_id
    }
    return {f"{kind}_cents": mine.get(kind, 0) for kind in sorted(OWNER_ACCOUNT_KINDS[owner_kind])}


def ledger_entries_for(*, account_ids: list[int]) -> QuerySet[LedgerEntry]:
    return LedgerEntry.objects.filter(
        Q(debit_account_id__in=account_ids) | Q(credit_account_id__in=account_ids)
    ).select_related("transaction", "debit_account", "credit_account")


def payout_list(*, worker: Worker) -> QuerySet[Payout]:
    return Payout.objects.filter(worker=worker).order_by("-id")


def payout_get(*, worker: Worker, payout_id: int) -> Payout:
    payout = Payout.objects.filter(worker=worker, pk=payout_id).first()
    if payout is None:
        raise NotFound("Payout not found.")
    return payout


def refund_list(*, requester: Requester) -> QuerySet[Refund]:
    return Refund.objects.filter(requester=requester).order_by("-id")


def refund_get(*, requester: Requester, refund_id: int) -> Refund:
    refund = Refund.objects.filter(requester=requester, pk=refund_id).first()
    if refund is None:
        raise NotFound("Refund not found.")
    return refund


def bonus_list_sent(*, requester: Requester) -> QuerySet[Bonus]:
    return Bonus.objects.filter(requester=requester).order_by("-id")


def bonus_list_received(*, worker: Worker) -> QuerySet[Bonus]:
    return Bonus.objects.filter(worker=worker).order_by("-id")
