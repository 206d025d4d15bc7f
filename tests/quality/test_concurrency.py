"""A QC rule firing while the same worker submits in parallel: one restriction, no lost answer."""

from __future__ import annotations

import pytest

from crowd.models import Assignment, QualityRule, Restriction
from crowd.services.claims import assignment_claim
from crowd.services.submissions import assignment_submit
from tests.concurrency.conftest import counter_mismatches, open_batch, run_threads
from tests.factories import WorkerFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("reject_pending", [False, True])
def test_parallel_submits_restrict_once_and_keep_every_answer(reject_pending):
    # given a gold-heavy batch whose rule fires on the first wrong control answers
    batch = open_batch(tasks=20, gold=20, gold_rate=0.5, max_claims_per_request=20, overlap=1)
    rule = QualityRule.objects.create(
        batch=batch,
        kind="gold_accuracy",
        params={"window": 20, "min_answers": 2, "threshold": 0.9},
        action={"scope": "batch", "duration_hours": 1, "reject_pending": reject_pending},
    )
    worker = WorkerFactory()
    leases = [lease.id for lease in assignment_claim(worker=worker, batch=batch, count=16)]

    # when 16 threads submit wrong answers at once
    failures = run_threads(
        [lambda pk=pk: assignment_submit(worker=worker, assignment_id=pk, answer="dog") for pk in leases]
    )

    # then
    assert failures == []
    assert Restriction.objects.filter(worker=worker, rule=rule).count() == 1
    rows = Assignment.objects.filter(pk__in=leases)
    assert all(a.answer == "dog" and a.submitted_at is not None for a in rows)
    assert set(rows.values_list("status", flat=True)) <= {"submitted", "rejected"}
    assert counter_mismatches(batch) == []
