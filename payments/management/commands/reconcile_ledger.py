"""``manage.py reconcile_ledger``: exit 0 when every balance equals its entries, all sum to 0, and the
other apps' checks of the ledger (``LEDGER_RECONCILE_CHECKS``: every accepted answer paid, no
other answer paid) find nothing."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from payments.models import Account, LedgerEntry
from payments.services.ledger import ledger_reconcile_all


class Command(BaseCommand):
    help = (
        "Check that every account balance equals its ledger entries, that the ledger sums to zero, "
        "and that every accepted answer has its payment and no other answer has one."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        problems = ledger_reconcile_all()
        if problems:
            for line in problems:
                self.stderr.write(line)
            raise CommandError(f"ledger out of balance: {len(problems)} problem(s)")
        self.stdout.write(
            f"ledger balanced: {Account.objects.count()} accounts, {LedgerEntry.objects.count()} entries"
        )
