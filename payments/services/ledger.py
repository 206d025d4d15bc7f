"""The double-entry ledger: the only code that writes entries or changes a balance.

A posting (``LedgerTransaction``) holds one or more entries; each entry debits one account and
credits another by the same positive amount, so the ledger always sums to zero. Balances are
projections (credits minus debits) updated in the same transaction under row locks taken in
ascending account id, so two postings over the same accounts queue instead of deadlocking.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Sum
from django.utils.module_loading import import_string

from marketplace.errors import Conflict, ValidationFailed

from ..enums import NEGATIVE_ALLOWED, OWNER_ACCOUNT_KINDS, AccountKind, EntryKind, OwnerKind
from ..errors import InsufficientFunds, LedgerImbalance
from ..models import PLATFORM_OWNER_ID, Account, LedgerEntry, LedgerTransaction
from ..money import SUPPORTED_CURRENCIES, check_amount


@dataclass(frozen=True)
class Leg:
    """One movement: ``amount_cents`` out of ``debit`` into ``credit``."""

    debit: Account
    credit: Account
    amount_cents: int


def account_get(*, owner_kind: str, owner_id: int, kind: str, currency: str = "USD") -> Account:
    """The owner's account, created on first use (safe under races: the unique constraint decides)."""
    if kind not in OWNER_ACCOUNT_KINDS[owner_kind]:
        raise ValueError(f"a {owner_kind} has no {kind} account")
    if currency not in SUPPORTED_CURRENCIES:
        raise ValidationFailed("Unsupported currency.", detail={"currency": [f"Use {SUPPORTED_CURRENCIES}."]})
    account, _ = Account.objects.get_or_create(
        owner_kind=owner_kind,
        owner_id=owner_id,
        kind=kind,
        currency=currency,
        defaults={"allow_negative": (owner_kind, kind) in NEGATIVE_ALLOWED},
    )
    return account


def platform_account(kind: str, currency: str = "USD") -> Account:
    return account_get(
        owner_kind=OwnerKind.PLATFORM, owner_id=PLATFORM_OWNER_ID, kind=kind, currency=currency
    )


def requester_account(requester_id: int, kind: str, currency: str = "USD") -> Account:
    return account_get(owner_kind=OwnerKind.REQUESTER, owner_id=requester_id, kind=kind, currency=currency)


def worker_account(worker_id: int, kind: str, currency: str = "USD") -> Account:
    return account_get(owner_kind=OwnerKind.WORKER, owner_id=worker_id, kind=kind, currency=currency)


def _signature(legs: list[tuple[int, int, int]], kind: str) -> tuple[str, list[tuple[int, int, int]]]:
    return kind, sorted(legs)


def _existing(key: str, kind: str, legs: list[tuple[int, int, int]]) -> LedgerTransaction | None:
    """The posting already made with ``key``, if its parameters match; Conflict if they differ."""
    posted = LedgerTransaction.objects.filter(idempotency_key=key).first()
    if posted is None:
        return None
    made = [
        (e.debit_account_id, e.credit_account_id, e.amount_cents)
        for e in LedgerEntry.objects.filter(transaction=posted)
    ]
    if _signature(made, posted.kind) != _signature(legs, kind):
        raise Conflict(
            "This idempotency key was already used for a different ledger posting.",
            code="idempotency_key_reused",
            detail={"idempotency_key": key},
        )
    return posted


def ledger_post(
    *, legs: list[Leg], idempotency_key: str, kind: str, reference: str = ""
) -> LedgerTransaction:
    """Post all ``legs`` atomically, once per ``idempotency_key``.

    The same key with the same legs and kind returns the first posting and changes nothing; the
    same key with other parameters raises Conflict. A debit that would take an account without
    ``allow_negative`` below zero raises InsufficientFunds and posts nothing. Joins the caller's
    transaction if there is one (so a caller can post and update its own rows atomically).
    """
    if not legs:
        raise ValueError("a posting needs at least one leg")
    if not idempotency_key or len(idempotency_key) > 200:
        raise ValueError("idempotency_key must be 1..200 characters")
    if kind not in EntryKind.values:
        raise ValueError(f"unknown entry kind {kind!r}")
    plain: list[tuple[int, int, int]] = []
    for leg in legs:
        check_amount(leg.amount_cents)
        if leg.debit.pk == leg.credit.pk:
            raise ValueError("a leg must move money between two different accounts")
        if leg.debit.currency != leg.credit.currency:
            raise ValueError("a leg cannot move money between currencies")
        plain.append((leg.debit.pk, leg.credit.pk, leg.amount_cents))

    with transaction.atomic():
        found = _existing(idempotency_key, kind, plain)
        if found is not None:
            return found
        ids = sorted({i for d, c, _ in plain for i in (d, c)})
        locked = {a.pk: a for a in Account.objects.select_for_update().filter(id__in=ids).order_by("id")}
        # Another posting with this key may have committed while we waited for the locks.
        found = _existing(idempotency_key, kind, plain)
        if found is not None:
            return found
        delta: dict[int, int] = defaultdict(int)
        for debit_id, credit_id, amount in plain:
            delta[debit_id] -= amount
            delta[credit_id] += amount
        for account_id, change in delta.items():
            account = locked[account_id]
            if not account.allow_negative and account.balance_cents + change < 0:
                raise InsufficientFunds(
                    "The balance is too low for this movement.",
                    detail={
                        "account": account.kind,
                        "balance_cents": account.balance_cents,
                        "shortfall_cents": -(account.balance_cents + change),
                        "currency": account.currency,
                    },
                )
        try:
            with transaction.atomic():
                posted = LedgerTransaction.objects.create(
                    idempotency_key=idempotency_key, kind=kind, reference=reference
                )
        except IntegrityError:
            # Same key, racing over other accounts: whatever committed first decides.
            found = _existing(idempotency_key, kind, plain)
            if found is None:  # pragma: no cover - the unique key was violated, so a row exists
                raise
            return found
        LedgerEntry.objects.bulk_create(
            [
                LedgerEntry(
                    transaction=posted,
                    debit_account_id=d,
                    credit_account_id=c,
                    amount_cents=amount,
                    currency=locked[d].currency,
                )
                for d, c, amount in plain
            ]
        )
        for account_id, change in delta.items():
            if change:
                Account.objects.filter(id=account_id).update(balance_cents=F("balance_cents") + change)
    return posted


def ledger_transfer(
    *,
    debit: Account,
    credit: Account,
    amount_cents: int,
    idempotency_key: str,
    kind: str,
    reference: str = "",
) -> LedgerTransaction:
    """Move ``amount_cents`` from ``debit`` to ``credit`` once per key (see ``ledger_post``)."""
    return ledger_post(
        legs=[Leg(debit, credit, amount_cents)],
        idempotency_key=idempotency_key,
        kind=kind,
        reference=reference,
    )


def ledger_reconcile() -> list[str]:
    """Every disagreement between balances and the ledger, as readable lines; ``[]`` when balanced.

    Checks: each balance equals its credits minus its debits; balances sum to zero per currency
    (entries do by construction, but the projections would not after a hand edit). Negative
    balances need no check here: the ``account_no_overdraft`` constraint refuses them.
    On PostgreSQL, outside a caller's transaction, it reads one REPEATABLE READ snapshot so postings
    committing mid-check cannot cause a false alarm.
    """
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            return _reconcile()
    return _reconcile()


def _reconcile() -> list[str]:
    problems: list[str] = []
    credits = dict(
        LedgerEntry.objects.values_list("credit_account").annotate(s=Sum("amount_cents")).order_by()
    )
    debits = dict(LedgerEntry.objects.values_list("debit_account").annotate(s=Sum("amount_cents")).order_by())
    totals: dict[str, int] = defaultdict(int)
    for account in Account.objects.order_by("id"):
        expected = credits.get(account.pk, 0) - debits.get(account.pk, 0)
        totals[account.currency] += account.balance_cents
        if account.balance_cents != expected:
            problems.append(
                f"account {account.pk} ({account}): balance {account.balance_cents} != ledger {expected}"
            )
    for currency, total in sorted(totals.items()):
        if total != 0:
            problems.append(f"balances in {currency} sum to {total}, not 0")
    return problems


def ledger_reconcile_all() -> list[str]:
    """``ledger_reconcile`` and then the checks of the apps that post to the ledger, as problem lines.

    Those are ``settings.LEDGER_RECONCILE_CHECKS``: dotted paths of callables returning lines (e.g.
    that every accepted answer was paid, which only ``marketplace`` can tell), so payments runs them
    without knowing tasks. ``manage.py reconcile_ledger`` and the beat task call this.
    """
    problems = ledger_reconcile()
    for path in getattr(settings, "LEDGER_RECONCILE_CHECKS", ()):
        problems += import_string(path)()
    return problems


def ledger_reconcile_or_raise() -> None:
    problems = ledger_reconcile()
    if problems:
        raise LedgerImbalance("; ".join(problems))


__all__ = [
    "AccountKind",
    "Leg",
    "account_get",
    "ledger_post",
    "ledger_reconcile",
    "ledger_reconcile_all",
    "ledger_reconcile_or_raise",
    "ledger_transfer",
    "platform_account",
    "requester_account",
    "worker_account",
]
