"""The last re-fit's model in later decisions: workers' confusion counts weigh the instant consensus,
and a re-fit re-applies the dynamic-overlap rule with its own confidences."""

from __future__ import annotations

import numpy as np
import pytest

from crowd.models import Worker, WorkerConfusion
from crowd.services.claims import assignment_claim
from marketplace.enums import BatchStatus
from marketplace.models import Batch, Task, TaskConsensus
from marketplace.services.consensus import _overlap_after_refit, batch_refit
from marketplace.services.consensus_model import Outcome
from tests.concurrency.conftest import counter_mismatches
from tests.consensus.builders import answer_all
from tests.factories import WorkerFactory, open_batch

pytestmark = pytest.mark.django_db

LABELS = ['"cat"', '"dog"', '"other"']


def _fitted_pair_and_contrarian(tasks: int = 4) -> tuple[Batch, Worker, Worker, Worker]:
    """A batch fitted once: A and B answer "cat" on every task, C always "dog"."""
    batch = open_batch(regular=tasks, overlap=3)
    a, b, c = (answer_all(batch, answer) for answer in ("cat", "cat", "dog"))
    assert batch_refit(batch_id=batch.pk) == 1
    batch.refresh_from_db()
    return batch, a, b, c


def _counts(batch: Batch, worker: Worker) -> np.ndarray:
    return np.asarray(WorkerConfusion.objects.get(batch=batch, worker=worker).counts)


def test_a_refit_keeps_each_workers_expected_confusion_counts():
    # when
    batch, a, b, c = _fitted_pair_and_contrarian()

    # then every task is "cat" for sure, so the counts are whole: A and B said cat 4 times on cat
    # tasks, C said dog 4 times on cat tasks; rows are [true][answered] over the enum
    assert batch.consensus_labels == LABELS
    assert batch.consensus_class_counts == pytest.approx([4, 0, 0], abs=1e-3)
    cat_on_cat = np.zeros((3, 3))
    cat_on_cat[0, 0] = 4
    dog_on_cat = np.zeros((3, 3))
    dog_on_cat[0, 1] = 4
    assert _counts(batch, a) == pytest.approx(cat_on_cat, abs=1e-3)
    assert _counts(batch, b) == pytest.approx(cat_on_cat, abs=1e-3)
    assert _counts(batch, c) == pytest.approx(dog_on_cat, abs=1e-3)
    assert WorkerConfusion.objects.filter(batch=batch).count() == 3


def test_after_a_refit_the_instant_consensus_weighs_workers_by_what_the_fit_learned():
    # given a fit that learned C contradicts the reliable pair, and a new task
    batch, a, _, c = _fitted_pair_and_contrarian()
    (new,) = Task.objects.bulk_create([Task(batch=batch, input={"text": "new"}, overlap=3)])

    # when A says cat, C dog and a newcomer D (no fit, no gold: reliability prior 0.8) dog
    answer_all(batch, "cat", worker=a)
    answer_all(batch, "dog", worker=c)
    d = answer_all(batch, "dog")

    # then the one-coin votes alone would say dog (.1*.8*.8 against .8*.1*.1); with the fitted
    # counts added to those one-coin rows (worth 5 answers each) and the fit's class shares (+1),
    # cat wins: A's cat row is [8, .5, .5] / 9 and C's [4, 4.5, .5] / 9
    row = TaskConsensus.objects.get(task=new)
    one_coin = np.where(np.eye(3, dtype=bool), 0.8, 0.1)
    rows = {w.pk: _counts(batch, w) + 5 * one_coin for w in (a, c)}
    rows = {w: r / r.sum(axis=1, keepdims=True) for w, r in rows.items()}
    priors = np.asarray(batch.consensus_class_counts) + 1
    joint = priors * rows[a.pk][:, 0] * rows[c.pk][:, 1] * one_coin[:, 1]
    assert joint.argmax() == 0
    assert (row.answer, row.model_version, row.answers_count) == ("cat", 0, 3)
    assert row.confidence == pytest.approx(joint[0] / joint.sum(), abs=1e-5)
    assert row.confidence == pytest.approx(0.774, abs=0.01)
    assert not WorkerConfusion.objects.filter(batch=batch, worker=d).exists()


def test_a_refit_stops_the_tasks_it_is_sure_of():
    # given a dynamic batch at target 0.99: two new workers agreeing reach only .64 / .66 = 0.97 in
    # the instant (one-coin) estimate, so each task got a third slot
    batch = open_batch(regular=6, overlap=2, min_overlap=2, max_overlap=4, target_confidence=0.99)
    answer_all(batch, "cat")
    answer_all(batch, "cat")
    assert set(Task.objects.filter(batch=batch).values_list("overlap", "status")) == {(3, "open")}

    # when the re-fit sees the two agree on all six tasks
    batch_refit(batch_id=batch.pk)

    # then it is sure, and the tasks stop at the two answers they have
    assert TaskConsensus.objects.filter(batch=batch, confidence__lt=0.99).count() == 0
    assert set(Task.objects.filter(batch=batch).values_list("overlap", "status")) == {(2, "complete")}
    assert assignment_claim(worker=WorkerFactory(), batch=batch, count=1) == []
    assert counter_mismatches(batch) == []


def _stopped_task() -> tuple[Batch, Task]:
    """A dynamic batch (target 0.9, up to 4 answers) whose task stopped at 2 answers: cat, cat
    reach .64 / .66 = 0.97 in the instant estimate."""
    batch = open_batch(regular=1, overlap=2, min_overlap=2, max_overlap=4, target_confidence=0.9)
    answer_all(batch, "cat")
    answer_all(batch, "cat")
    (task,) = Task.objects.filter(batch=batch)
    assert (task.overlap, task.status) == (2, "complete")
    return batch, task


def _overlap(task: Task) -> tuple[int, str]:
    task.refresh_from_db()
    return task.overlap, task.status


def test_a_refit_that_doubts_a_stopped_task_gives_it_one_more_slot():
    # given
    batch, task = _stopped_task()

    # when a re-fit over the same two answers finds it unsure
    changed = _overlap_after_refit(batch, {task.pk: Outcome("cat", 0.6, 2)})

    # then
    assert changed == 1
    assert _overlap(task) == (3, "open")
    assert len(assignment_claim(worker=WorkerFactory(), batch=batch, count=1)) == 1
    assert counter_mismatches(batch) == []


def test_a_refit_leaves_tasks_answered_since_its_read_and_closed_batches_alone():
    # given
    batch, task = _stopped_task()

    # when the fit saw only one of the two answers
    stale = _overlap_after_refit(batch, {task.pk: Outcome("cat", 0.6, 1)})

    # then its confidence does not decide
    assert stale == 0
    assert _overlap(task) == (2, "complete")

    # when the batch is closed
    Batch.objects.filter(pk=batch.pk).update(status=BatchStatus.CLOSED)
    batch.refresh_from_db()

    # then nothing reopens
    assert _overlap_after_refit(batch, {task.pk: Outcome("cat", 0.6, 2)}) == 0
    assert _overlap(task) == (2, "complete")
