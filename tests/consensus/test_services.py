"""Service tests: instant consensus at overlap, the periodic re-fit, dynamic overlap, the reserve."""

from __future__ import annotations

import pytest

from crowd.services.claims import assignment_claim
from marketplace.models import Batch, Task, TaskConsensus
from marketplace.services import budget
from marketplace.services.batches import batch_close
from marketplace.services.consensus import batch_refit, batches_due_for_refit
from marketplace.tasks import consensus_refit_sweep
from tests.concurrency.conftest import counter_mismatches
from tests.consensus.builders import answer_all
from tests.factories import WorkerFactory, open_batch

pytestmark = pytest.mark.django_db

# Three new workers (reliability prior mean 0.8) on a 3-class project (cat, dog, other), one-coin:
# cat,cat,dog -> P(cat) = .8*.8*.1 / (.8*.8*.1 + .1*.1*.8 + .1*.1*.1) = 0.064 / 0.073.
CAT_CAT_DOG = 0.064 / 0.073


def _rows(batch: Batch) -> list[tuple]:
    return list(
        TaskConsensus.objects.filter(batch=batch)
        .order_by("task_id")
        .values_list(
            "task_id", "answer", "confidence", "answers_count", "method", "model_version", "updated_at"
        )
    )


# --- instant consensus ---------------------------------------------------------------------------


def test_a_task_reaching_its_overlap_gets_its_consensus_at_once():
    # given
    batch = open_batch(regular=1, overlap=3)
    (task,) = Task.objects.filter(batch=batch)
    answer_all(batch, "cat")
    answer_all(batch, "cat")
    assert not TaskConsensus.objects.exists()  # not before the overlap

    # when
    answer_all(batch, "dog")

    # then
    row = TaskConsensus.objects.get(task=task)
    assert (row.answer, row.answers_count, row.method, row.model_version) == ("cat", 3, "dawid_skene", 0)
    assert row.confidence == pytest.approx(CAT_CAT_DOG, abs=1e-5)


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_completing_submit_hands_consensus_to_a_worker_which_retries_a_failure(monkeypatch, redis_celery):
    # given: the first upsert fails (say, a lost connection), the retry works
    from celery.contrib.testing.worker import start_worker
    from django.db import DatabaseError

    from marketplace.celery import app
    from marketplace.services import consensus
    from tests.celery_worker import queued, wait_for

    real, calls = consensus._consensus_upsert, []

    def flaky(row):
        calls.append(row.task_id)
        if len(calls) == 1:
            raise DatabaseError("connection lost")
        return real(row)

    monkeypatch.setattr(consensus, "_consensus_upsert", flaky)
    # (the re-fit that a completed batch enqueues would overwrite the row this test reads)
    refits: list[int] = []
    monkeypatch.setattr(consensus, "refit_later", lambda *, batch_id: refits.append(batch_id))
    batch = open_batch(regular=1, overlap=3)
    (task,) = Task.objects.filter(batch=batch)
    answer_all(batch, "cat")
    answer_all(batch, "cat")

    # when: the submit that completes the task returns, with no Celery worker running
    answer_all(batch, "dog")

    # then: the consensus was not computed in the request; it waits in the broker
    assert (calls, TaskConsensus.objects.filter(task=task).exists(), queued()) == ([], False, 1)
    # and a worker computes it, on the second try after the first one failed
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=15):
        assert wait_for(lambda: bool(refits) and TaskConsensus.objects.filter(task=task).exists(), seconds=20)
    assert (calls, refits) == ([task.pk, task.pk], [batch.pk])
    row = TaskConsensus.objects.get(task=task)
    assert (row.answer, row.answers_count) == ("cat", 3)
    assert row.confidence == pytest.approx(CAT_CAT_DOG, abs=1e-5)
    assert Task.objects.get(pk=task.pk).answers_count == 3


def test_majority_batches_report_the_vote_share():
    # given
    batch = open_batch(regular=1, overlap=3, aggregation_method="majority")

    # when
    for label in ("dog", "cat", "dog"):
        answer_all(batch, label)

    # then
    row = TaskConsensus.objects.get(batch=batch)
    assert (row.answer, row.confidence, row.method) == ("dog", pytest.approx(2 / 3, abs=1e-6), "majority")


# --- full re-fit ---------------------------------------------------------------------------------


def test_refit_writes_every_task_with_a_new_version_and_is_idempotent():
    # given two tasks answered by three workers, one disagreeing on the second task
    batch = open_batch(regular=2, overlap=3)
    first, second = Task.objects.filter(batch=batch).order_by("id")
    answer_all(batch, "cat")
    answer_all(batch, {first.pk: "cat", second.pk: "dog"})
    answer_all(batch, "dog")

    # when
    version = batch_refit(batch_id=batch.pk)

    # then
    assert version == 1
    rows = _rows(batch)
    assert [(r[0], r[1], r[3], r[4], r[5]) for r in rows] == [
        (first.pk, "cat", 3, "dawid_skene", 1),
        (second.pk, "dog", 3, "dawid_skene", 1),
    ]
    batch.refresh_from_db()
    # the answer schema's enum is the class list, "other" included although nobody chose it
    assert batch.consensus_version == 1 and batch.consensus_labels == ['"cat"', '"dog"', '"other"']

    # when re-run with the same answers
    again = batch_refit(batch_id=batch.pk)

    # then nothing changed, not even the rows' times
    assert again == 1
    assert _rows(batch) == rows


def test_refit_after_new_answers_bumps_the_version():
    # given a fitted batch
    batch = open_batch(regular=2, overlap=2)
    answer_all(batch, "cat")
    answer_all(batch, "cat")
    assert batch_refit(batch_id=batch.pk) == 1
    assert batches_due_for_refit() == []

    # when a new task is answered and the batch is re-fitted
    (extra,) = Task.objects.bulk_create([Task(batch=batch, input={"text": "new"}, overlap=2)])
    answer_all(batch, "dog")

    # then
    assert batches_due_for_refit() == [batch.pk]
    assert batch_refit(batch_id=batch.pk) == 2
    assert {r[0]: (r[1], r[5]) for r in _rows(batch)}[extra.pk] == ("dog", 2)
    assert {r[5] for r in _rows(batch)} == {2}


def test_the_periodic_sweep_refits_batches_with_new_answers_only():
    # given one batch with answers and one without
    busy = open_batch(regular=1, overlap=2)
    open_batch(regular=1, overlap=2)
    answer_all(busy, "cat")

    # when
    enqueued = consensus_refit_sweep()

    # then (Celery runs eagerly in tests)
    assert enqueued == 1
    busy.refresh_from_db()
    assert busy.consensus_version == 1
    assert TaskConsensus.objects.get(batch=busy).model_version == 1
    assert consensus_refit_sweep() == 0


def test_the_last_task_completing_enqueues_a_refit(django_capture_on_commit_callbacks):
    # given
    batch = open_batch(regular=1, overlap=2)
    answer_all(batch, "cat")

    # when
    with django_capture_on_commit_callbacks(execute=True):
        answer_all(batch, "cat")

    # then
    batch.refresh_from_db()
    assert batch.consensus_version == 1
    assert TaskConsensus.objects.get(batch=batch).model_version == 1


# --- dynamic overlap -----------------------------------------------------------------------------


def _dynamic(**fields) -> Batch:
    return open_batch(regular=1, **fields)


def test_a_task_that_reaches_the_target_stops_taking_answers():
    # given overlap 3 but only 2 needed when they agree: P(cat | cat, cat) = .64 / .66 >= 0.9
    batch = _dynamic(overlap=3, min_overlap=2, max_overlap=5, target_confidence=0.9)
    (task,) = Task.objects.filter(batch=batch)

    # when
    answer_all(batch, "cat")
    answer_all(batch, "cat")

    # then the task is complete at two answers and nobody can claim it
    task.refresh_from_db()
    assert (task.overlap, task.slots_taken, task.answers_count, task.status) == (2, 2, 2, "complete")
    assert TaskConsensus.objects.get(task=task).confidence == pytest.approx(0.64 / 0.66, abs=1e-5)
    assert assignment_claim(worker=WorkerFactory(), batch=batch, count=1) == []
    assert counter_mismatches(batch) == []


def test_a_task_below_the_target_gets_one_more_slot_but_never_beyond_max():
    # given
    batch = _dynamic(overlap=2, min_overlap=2, max_overlap=3, target_confidence=0.95)
    (task,) = Task.objects.filter(batch=batch)

    # when two workers disagree
    answer_all(batch, "cat")
    answer_all(batch, "dog")

    # then one more slot opens
    task.refresh_from_db()
    assert (task.overlap, task.answers_count, task.status) == (3, 2, "open")

    # when a third worker still leaves it below the target
    answer_all(batch, "other")

    # then it stops at max_overlap
    task.refresh_from_db()
    assert (task.overlap, task.answers_count, task.status) == (3, 3, "complete")
    assert assignment_claim(worker=WorkerFactory(), batch=batch, count=1) == []
    assert counter_mismatches(batch) == []


def test_without_dynamic_overlap_a_doubtful_task_keeps_its_overlap():
    # given
    batch = open_batch(regular=1, overlap=2)
    (task,) = Task.objects.filter(batch=batch)

    # when
    answer_all(batch, "cat")
    answer_all(batch, "dog")

    # then
    task.refresh_from_db()
    assert (task.overlap, task.status) == (2, "complete")


def test_the_reserve_covers_max_overlap():
    # given 4 tasks at overlap 3 that may grow to 5
    batch = open_batch(regular=4, overlap=3, min_overlap=2, max_overlap=5, target_confidence=0.9)

    # then
    per_answer = sum(budget.answer_cost(batch))
    assert budget.batch_required_cents(batch) == 4 * 5 * per_answer
    batch.refresh_from_db()
    assert batch.reserved_cents == 4 * 5 * per_answer


def test_closing_a_batch_refits_its_final_answers(django_capture_on_commit_callbacks):
    # given a batch with an incomplete task and no fit yet
    batch = open_batch(regular=1, overlap=3)
    answer_all(batch, "cat")

    # when
    with django_capture_on_commit_callbacks(execute=True):
        batch_close(batch=batch)

    # then
    assert TaskConsensus.objects.get(batch=batch).model_version == 1
