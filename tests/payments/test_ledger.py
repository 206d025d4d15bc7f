"""The ledger service: double entry, idempotency, overdraft refusal, reconciliation, read-only admin."""

from __future__ import annotations

import random

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import Sum

from marketplace.errors import Conflict
from payments.enums import AccountKind, EntryKind, OwnerKind
from payments.errors import InsufficientFunds, LedgerImbalance
from payments.models import Account, LedgerEntry, LedgerTransaction
from payments.services.ledger import (
    Leg,
    ledger_post,
    ledger_reconcile,
    ledger_reconcile_or_raise,
    ledger_transfer,
    platform_account,
    requester_account,
    worker_account,
)
from payments.tasks import ledger_reconcile as ledger_reconcile_task
from tests.payments.factories import balances

pytestmark = pytest.mark.django_db


def _clearing() -> Account:
    return platform_account(AccountKind.STRIPE_CLEARING)


def _refresh(*accounts: Account) -> list[int]:
    return [Account.objects.get(pk=a.pk).balance_cents for a in accounts]


def test_transfer_debits_one_account_and_credits_the_other():
    # given the clearing account and a requester's available account
    clearing, available = _clearing(), requester_account(1, AccountKind.AVAILABLE)

    # when 1500 is transferred from one to the other
    posted = ledger_transfer(
        debit=clearing, credit=available, amount_cents=1500, idempotency_key="k1", kind=EntryKind.FUNDING
    )

    # then one entry, and exactly those two balances moved
    assert _refresh(clearing, available) == [-1500, 1500]
    assert balances() == {"platform:stripe_clearing": -1500, "requester:1:available": 1500}
    entry = LedgerEntry.objects.get(transaction=posted)
    assert (entry.debit_account_id, entry.credit_account_id, entry.amount_cents, entry.currency) == (
        clearing.pk,
        available.pk,
        1500,
        "USD",
    )
    assert ledger_reconcile() == []


def test_same_key_same_params_returns_the_first_posting_and_moves_nothing_more():
    # given a 700 transfer posted under key "k"
    clearing, available = _clearing(), requester_account(1, AccountKind.AVAILABLE)
    first = ledger_transfer(
        debit=clearing, credit=available, amount_cents=700, idempotency_key="k", kind="funding"
    )
    before = balances()

    # when it is posted again
    again = ledger_transfer(
        debit=clearing, credit=available, amount_cents=700, idempotency_key="k", kind="funding"
    )

    # then the first posting comes back, and nothing more moved
    assert again.pk == first.pk
    assert _refresh(clearing, available) == [-700, 700]
    assert balances() == before
    assert before == {"platform:stripe_clearing": -700, "requester:1:available": 700}
    assert LedgerEntry.objects.count() == 1


@pytest.mark.parametrize("change", ["amount", "account", "kind"])
def test_same_key_other_params_is_a_conflict_and_changes_nothing(change):
    clearing, available = _clearing(), requester_account(1, AccountKind.AVAILABLE)
    other = requester_account(2, AccountKind.AVAILABLE)
    # given a 700 transfer posted under key "k"
    ledger_transfer(debit=clearing, credit=available, amount_cents=700, idempotency_key="k", kind="funding")
    before = balances()
    kwargs = {
        "debit": clearing,
        "credit": available,
        "amount_cents": 700,
        "idempotency_key": "k",
        "kind": "funding",
    }
    kwargs |= {"amount": {"amount_cents": 701}, "account": {"credit": other}, "kind": {"kind": "adjustment"}}[
        change
    ]

    # when "k" is posted with one parameter changed
    with pytest.raises(Conflict) as err:
        ledger_transfer(**kwargs)

    # then a conflict, and nothing moved
    assert err.value.code == "idempotency_key_reused"
    assert _refresh(clearing, available, other) == [-700, 700, 0]
    assert balances() == before
    assert before == {"platform:stripe_clearing": -700, "requester:1:available": 700}
    assert LedgerEntry.objects.count() == 1


def test_overdraft_is_refused_with_the_shortfall_and_nothing_is_written():
    clearing, available = _clearing(), requester_account(1, AccountKind.AVAILABLE)
    reserved = requester_account(1, AccountKind.RESERVED)
    # given 300 available
    ledger_transfer(
        debit=clearing, credit=available, amount_cents=300, idempotency_key="fund", kind="funding"
    )
    before = balances()

    # when 301 is moved out of it
    with pytest.raises(InsufficientFunds) as err:
        ledger_transfer(
            debit=available, credit=reserved, amount_cents=301, idempotency_key="r", kind="reserve"
        )

    # then a 409 with the shortfall, and nothing moved
    assert err.value.status_code == 409
    assert err.value.detail == {
        "account": "available",
        "balance_cents": 300,
        "shortfall_cents": 1,
        "currency": "USD",
    }
    assert _refresh(clearing, available, reserved) == [-300, 300, 0]
    assert balances() == before
    assert before == {"platform:stripe_clearing": -300, "requester:1:available": 300}
    assert not LedgerTransaction.objects.filter(idempotency_key="r").exists()


def test_multi_leg_posting_is_all_or_nothing():
    clearing = _clearing()
    reserved = requester_account(1, AccountKind.RESERVED)
    pending = worker_account(5, AccountKind.PENDING)
    fees = platform_account(AccountKind.FEE_REVENUE)
    # given 100 reserved
    ledger_transfer(
        debit=clearing, credit=reserved, amount_cents=100, idempotency_key="seed", kind="adjustment"
    )
    before = balances()

    # when a two-leg posting of 105 is refused, then one of 100 is posted under the same key
    with pytest.raises(InsufficientFunds):
        ledger_post(
            legs=[Leg(reserved, pending, 95), Leg(reserved, fees, 10)], idempotency_key="acc", kind="accept"
        )
    after_refusal = balances()
    ledger_post(
        legs=[Leg(reserved, pending, 90), Leg(reserved, fees, 10)], idempotency_key="acc", kind="accept"
    )

    # then the refused one moved nothing, not even its first leg; the second moved both legs
    assert after_refusal == before == {"platform:stripe_clearing": -100, "requester:1:reserved": 100}
    assert _refresh(clearing, reserved, pending, fees) == [-100, 0, 90, 10]
    assert balances() == {
        "platform:stripe_clearing": -100,
        "worker:5:pending": 90,
        "platform:fee_revenue": 10,
    }
    assert ledger_reconcile() == []


@pytest.mark.parametrize(
    ("amount", "same_account", "kind"),
    [
        (0, False, "funding"),
        (-5, False, "funding"),
        (1.5, False, "funding"),
        (True, False, "funding"),
        (5, True, "funding"),
        (5, False, "nonsense"),
    ],
)
def test_invalid_postings_raise_before_touching_anything(amount, same_account, kind):
    # given two empty accounts
    clearing = _clearing()
    other = clearing if same_account else requester_account(1, AccountKind.AVAILABLE)

    # when a malformed posting is made
    with pytest.raises(ValueError):
        ledger_transfer(debit=clearing, credit=other, amount_cents=amount, idempotency_key="x", kind=kind)

    # then it is refused, and no balance moved
    assert LedgerTransaction.objects.count() == 0
    assert _refresh(clearing) == [0]
    assert balances() == {}


def test_accounts_of_the_wrong_kind_or_currency_are_refused():
    # account validation, not money: nothing is posted, so no balance can move
    with pytest.raises(ValueError):
        worker_account(1, AccountKind.RESERVED)
    with pytest.raises(Exception) as err:
        requester_account(1, AccountKind.AVAILABLE, currency="EUR")
    assert getattr(err.value, "code", "") == "invalid"
    assert Account.objects.count() == 0
    assert balances() == {}


def test_random_operation_sequences_keep_every_invariant():
    """Property test: whatever the sequence, balances equal entries, the ledger sums to zero, no
    non-platform account goes negative, and each key moves money once."""
    rng = random.Random(20240605)
    clearing, fees = _clearing(), platform_account(AccountKind.FEE_REVENUE)
    req = {r: (requester_account(r, "available"), requester_account(r, "reserved")) for r in (1, 2, 3)}
    wrk = {w: (worker_account(w, "pending"), worker_account(w, "available")) for w in (1, 2)}
    names = {clearing.pk: "platform:stripe_clearing", fees.pk: "platform:fee_revenue"}
    for r, (available, reserved) in req.items():
        names |= {available.pk: f"requester:{r}:available", reserved.pk: f"requester:{r}:reserved"}
    for w, (pending, available) in wrk.items():
        names |= {pending.pk: f"worker:{w}:pending", available.pk: f"worker:{w}:available"}
    expected: dict[int, int] = {}
    keys_used: list[tuple[str, list[tuple[Account, Account, int]], str]] = []

    def apply(key: str, legs: list[tuple[Account, Account, int]], kind: str) -> None:
        before = {a.pk: a.balance_cents for a in Account.objects.all()}
        try:
            ledger_post(legs=[Leg(d, c, n) for d, c, n in legs], idempotency_key=key, kind=kind)
        except InsufficientFunds:
            assert {a.pk: a.balance_cents for a in Account.objects.all()} == before
            return
        for d, c, n in legs:
            expected[d.pk] = expected.get(d.pk, 0) - n
            expected[c.pk] = expected.get(c.pk, 0) + n
        keys_used.append((key, legs, kind))

    for step in range(250):
        r = rng.choice(list(req))
        w = rng.choice(list(wrk))
        amount = rng.randint(1, 500)
        op = rng.random()
        if op < 0.25:
            apply(f"fund:{step}", [(clearing, req[r][0], amount)], "funding")
        elif op < 0.45:
            apply(f"reserve:{step}", [(req[r][0], req[r][1], amount)], "reserve")
        elif op < 0.55:
            apply(f"release:{step}", [(req[r][1], req[r][0], amount)], "release")
        elif op < 0.75:
            apply(
                f"accept:{step}",
                [(req[r][1], wrk[w][0], amount), (req[r][1], fees, amount // 10 + 1)],
                "accept",
            )
        elif op < 0.85:
            apply(f"hold:{step}", [(wrk[w][0], wrk[w][1], amount)], "hold_release")
        elif op < 0.93:
            apply(f"payout:{step}", [(wrk[w][1], clearing, amount)], "payout")
        elif keys_used:
            # A replay of an earlier posting: must change nothing.
            key, legs, kind = rng.choice(keys_used)
            before = {a.pk: a.balance_cents for a in Account.objects.all()}
            ledger_post(legs=[Leg(d, c, n) for d, c, n in legs], idempotency_key=key, kind=kind)
            assert {a.pk: a.balance_cents for a in Account.objects.all()} == before

    assert ledger_reconcile() == []
    assert balances() == {names[pk]: cents for pk, cents in expected.items() if cents != 0}
    for account in Account.objects.all():
        assert account.balance_cents == expected.get(account.pk, 0)
        if not account.allow_negative:
            assert account.balance_cents >= 0
    assert sum(a.balance_cents for a in Account.objects.all()) == 0
    assert LedgerTransaction.objects.count() == len(keys_used)
    assert LedgerEntry.objects.aggregate(s=Sum("amount_cents"))["s"] > 0


def test_reconcile_reports_a_balance_edited_behind_the_ledger(capsys):
    # given a balanced 900 transfer
    clearing, available = _clearing(), requester_account(1, AccountKind.AVAILABLE)
    ledger_transfer(debit=clearing, credit=available, amount_cents=900, idempotency_key="k", kind="funding")
    call_command("reconcile_ledger")
    assert "ledger balanced: 2 accounts, 1 entries" in capsys.readouterr().out
    assert balances() == {"platform:stripe_clearing": -900, "requester:1:available": 900}

    # when a balance is edited behind the ledger's back
    Account.objects.filter(pk=available.pk).update(balance_cents=1000)

    # then every check reports it, and none of them "repairs" a balance
    problems = ledger_reconcile()
    assert problems == [
        f"account {available.pk} (requester:1:available (USD)): balance 1000 != ledger 900",
        "balances in USD sum to 100, not 0",
    ]
    with pytest.raises(CommandError, match="2 problem"):
        call_command("reconcile_ledger")
    with pytest.raises(LedgerImbalance):
        ledger_reconcile_or_raise()
    with pytest.raises(LedgerImbalance):
        ledger_reconcile_task.delay()
    assert balances() == {"platform:stripe_clearing": -900, "requester:1:available": 1000}


def test_admin_shows_money_rows_read_only(admin_client):
    # given a 5 cent transfer
    clearing, available = _clearing(), requester_account(1, AccountKind.AVAILABLE)
    posted = ledger_transfer(
        debit=clearing, credit=available, amount_cents=5, idempotency_key="k", kind="funding"
    )
    before = balances()

    # when an admin lists, adds, edits and deletes money rows
    listing = admin_client.get("/admin/payments/account/")
    add = admin_client.get("/admin/payments/ledgerentry/add/")
    change = admin_client.post(f"/admin/payments/account/{available.pk}/change/", {"balance_cents": 999})
    delete = admin_client.post(f"/admin/payments/ledgertransaction/{posted.pk}/delete/", {"post": "yes"})

    # then only the listing is allowed, and nothing moved
    assert listing.status_code == 200
    assert add.status_code == 403
    assert change.status_code == 403
    assert delete.status_code == 403
    assert _refresh(available) == [5]
    assert balances() == before
    assert before == {"platform:stripe_clearing": -5, "requester:1:available": 5}
    assert LedgerTransaction.objects.count() == 1
    assert clearing.owner_kind == OwnerKind.PLATFORM
