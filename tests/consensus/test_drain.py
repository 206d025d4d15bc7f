"""The consensus of completed tasks is computed by a Celery drain, never in the submit's response,
and one drain serves every task completed before it starts (a real worker on the Redis broker)."""

from __future__ import annotations

import pytest
from celery.contrib.testing.worker import start_worker

from crowd.services import submissions
from crowd.services.claims import assignment_claim
from crowd.services.submissions import assignment_submit
from marketplace.celery import app
from marketplace.models import Task, TaskConsensus
from tests.celery_worker import queued, wait_for
from tests.factories import WorkerFactory, open_batch

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _no_drain_pending():
    submissions._drain_starts.clear()
    yield
    submissions._drain_starts.clear()


def _answer(batch, worker, count, answer="cat", *, gold=False):
    leases = assignment_claim(worker=worker, batch=batch, count=count)
    for lease in leases:
        assignment_submit(worker=worker, assignment_id=lease.id, answer=answer)
    return leases


def test_a_burst_of_completed_tasks_is_one_drain_that_computes_them_all(redis_celery, settings):
    # given a batch of 5 tasks at overlap 1 and a drain delay long enough for the whole burst
    settings.CONSENSUS_DRAIN_DELAY_MS = 3000
    batch = open_batch(regular=5, overlap=1, max_claims_per_request=10)

    # when one worker completes all five
    _answer(batch, WorkerFactory(), 5)

    # then every task is marked due, nothing is computed yet, and one drain waits in the broker
    tasks = Task.objects.filter(batch=batch)
    assert set(tasks.values_list("consensus_due", flat=True)) == {True}
    assert (TaskConsensus.objects.count(), queued()) == (0, 1)

    # and a worker computes all five in that one drain, clearing the marks
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=15):
        assert wait_for(lambda: TaskConsensus.objects.filter(batch=batch).count() == 5, seconds=20)
    assert set(tasks.values_list("consensus_due", flat=True)) == {False}
    assert set(TaskConsensus.objects.values_list("answer", "answers_count")) == {("cat", 1)}


def test_a_task_completed_after_the_drain_started_gets_a_drain_of_its_own(redis_celery, settings):
    # given a drain that has already started (its start time has passed) for the batch
    settings.CONSENSUS_DRAIN_DELAY_MS = 0
    batch = open_batch(regular=2, overlap=1, max_claims_per_request=10)
    worker = WorkerFactory()
    _answer(batch, worker, 1)
    assert queued() == 1

    # when the second task completes
    _answer(batch, worker, 1)

    # then it is not left to the first drain, which may have looked already
    assert queued() == 2
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=15):
        assert wait_for(lambda: TaskConsensus.objects.filter(batch=batch).count() == 2, seconds=20)


def test_control_answers_mark_nothing_and_queue_nothing(redis_celery):
    # given a batch whose claims are all gold
    batch = open_batch(regular=1, gold=3, gold_rate=1.0, overlap=1, max_claims_per_request=10)

    # when a worker answers three control tasks
    leases = _answer(batch, WorkerFactory(), 3)

    # then no task is due and no drain was queued: a control answer completes nothing
    assert len(leases) == 3
    assert not Task.objects.filter(consensus_due=True).exists()
    assert queued() == 0
