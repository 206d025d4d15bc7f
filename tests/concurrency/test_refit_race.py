"""Batch re-fits against each other and against the batch row's other users, on PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from django.db import transaction

from crowd.models import WorkerConfusion
from marketplace.models import Batch, TaskConsensus
from marketplace.services import consensus
from tests.concurrency.conftest import open_batch, run_threads
from tests.consensus.builders import answer_all

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _answered_batch() -> Batch:
    """Three answers on each of six tasks that want four: not complete, so nothing re-fitted yet."""
    batch = open_batch(tasks=6, overlap=4)
    for answer in ("cat", "cat", "dog"):
        answer_all(batch, answer)
    assert batch.consensus_version == 0 == Batch.objects.get(pk=batch.pk).consensus_version
    return batch


def test_two_refits_of_one_batch_write_once():
    # given
    batch = _answered_batch()
    versions: list[int] = []

    # when two workers run the re-fit at the same moment
    failures = run_threads([lambda: versions.append(consensus.batch_refit(batch_id=batch.pk))] * 2)

    # then one wrote version 1, the other found the same input already written
    assert failures == []
    assert versions == [1, 1]
    batch.refresh_from_db()
    assert batch.consensus_version == 1
    assert set(TaskConsensus.objects.filter(batch=batch).values_list("model_version", flat=True)) == {1}
    assert WorkerConfusion.objects.filter(batch=batch).count() == 3


def test_a_refit_writing_its_rows_leaves_the_batch_row_free(monkeypatch):
    # given a re-fit paused right after writing its consensus rows
    batch = _answered_batch()
    written, release = threading.Event(), threading.Event()
    real = consensus._consensus_rows_write

    def paused(*args, **kwargs):
        real(*args, **kwargs)
        written.set()
        assert release.wait(30)

    monkeypatch.setattr(consensus, "_consensus_rows_write", paused)
    locked_meanwhile: list[bool] = []

    def pay_meanwhile() -> None:
        # what paying for an accepted answer does first: lock the batch row (here: without waiting)
        assert written.wait(30)
        try:
            with transaction.atomic():
                Batch.objects.select_for_update(no_key=True, nowait=True).get(pk=batch.pk)
            locked_meanwhile.append(True)
        finally:
            release.set()

    # when
    failures = run_threads([lambda: consensus.batch_refit(batch_id=batch.pk), pay_meanwhile])

    # then the batch row could be locked while the rows were being written, and the fit landed
    assert failures == []
    assert locked_meanwhile == [True]
    batch.refresh_from_db()
    assert batch.consensus_version == 1
