"""What admins read: plurals spelt right, workers named by e-mail, list pages in a fixed number of
queries whatever the number of rows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from crowd.models import Reliability, Restriction, TrainingResult, Worker
from payments.models import Bonus, Payout, PayoutAccount
from tests.factories import AssignmentFactory, BatchFactory, ProjectFactory, RequesterFactory, WorkerFactory

pytestmark = pytest.mark.django_db


def test_the_index_page_spells_the_plurals(staff):
    # when an admin opens the index
    page = staff.get("/admin/").content.decode()

    # then
    for right in ("Batches", "Bonuses", "Reliabilities", "Ledger entries", "Requester freeze events"):
        assert f">{right}</a>" in page, right
    for wrong in ("Batchs", "Bonuss", "Reliabilitys", "Ledger entrys"):
        assert wrong not in page, wrong


def _restriction() -> Restriction:
    return Restriction.objects.create(
        worker=WorkerFactory(),
        scope="platform",
        reason="Fraud.",
        created_by="admin",
        created_at=timezone.now(),
    )


# Each list that names workers, and how to add one of its rows (the money in them is beside the
# point here: these pages only read).
LISTS: dict[str, Callable[[], Any]] = {
    "/admin/crowd/worker/": WorkerFactory,
    "/admin/crowd/assignment/": AssignmentFactory,
    "/admin/crowd/restriction/": _restriction,
    "/admin/crowd/reliability/": lambda: Reliability.objects.create(
        worker=WorkerFactory(), project=ProjectFactory()
    ),
    "/admin/crowd/trainingresult/": lambda: TrainingResult.objects.create(
        worker=WorkerFactory(), batch=BatchFactory(), accuracy=1.0, passed=True, finished_at=timezone.now()
    ),
    "/admin/payments/payout/": lambda: Payout.objects.create(
        worker=WorkerFactory(), amount_cents=500, currency="USD", destination="acct_1"
    ),
    "/admin/payments/bonus/": lambda: Bonus.objects.create(
        requester=RequesterFactory(),
        worker=WorkerFactory(),
        amount_cents=100,
        currency="USD",
        reason="Thanks.",
    ),
    "/admin/payments/payoutaccount/": lambda: PayoutAccount.objects.create(worker=WorkerFactory()),
}


@pytest.mark.parametrize("url", LISTS)
def test_lists_name_workers_by_email_in_a_fixed_number_of_queries(staff, url):
    # given one row, then three
    make = LISTS[url]
    make()
    with CaptureQueriesContext(connection) as one:
        assert staff.get(url).status_code == 200
    make(), make()

    # when the list is shown
    with CaptureQueriesContext(connection) as three:
        page = staff.get(url).content.decode()

    # then every worker is named by e-mail, with no query per row
    emails = list(Worker.objects.values_list("user__email", flat=True))
    assert len(emails) >= 3
    for email in emails:
        assert email in page, email
    assert len(three) == len(one)
