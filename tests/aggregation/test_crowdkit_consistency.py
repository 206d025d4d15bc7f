"""Consistency with crowd-kit, the reference open-source implementation (skipped when absent).

crowd-kit is a test/benchmark dependency only (requirements-dev.txt), never a runtime one.
"""

import numpy as np
import pytest

from crowd.aggregation import dawid_skene, majority_vote

from .fixtures import simulate

pd = pytest.importorskip("pandas")
crowdkit = pytest.importorskip("crowdkit.aggregation")


def _frame(task, worker, label):
    return pd.DataFrame({"task": task, "worker": worker, "label": label})


def test_majority_vote_agrees_label_for_label_including_ties():
    task, worker, label, _ = simulate([0.8, 0.7, 0.6, 0.6], n_tasks=300, n_classes=3, per_task=2, seed=11)

    ours = majority_vote(task, worker, label)
    theirs = crowdkit.MajorityVote().fit_predict(_frame(task, worker, label)).sort_index()

    assert ours.labels.tolist() == theirs.to_numpy().tolist()


def test_dawid_skene_agrees_on_labels_and_confusion_matrices():
    task, worker, label, truth = simulate(
        [0.9, 0.85, 0.8, 0.7, 0.6, 0.55], n_tasks=400, n_classes=3, per_task=4, seed=12
    )

    ours = dawid_skene(task, worker, label)
    model = crowdkit.DawidSkene(n_iter=100)
    theirs = model.fit_predict(_frame(task, worker, label)).sort_index().to_numpy()

    assert (ours.labels == theirs).mean() >= 0.98
    assert (ours.labels == truth).mean() >= (theirs == truth).mean() - 0.01
    # crowd-kit's errors_ are indexed (worker, answered) with a column per true class.
    errors = model.errors_.sort_index()
    their_confusion = errors.to_numpy().reshape(6, 3, 3).transpose(0, 2, 1)
    assert ours.confusion is not None
    np.testing.assert_allclose(ours.confusion, their_confusion, atol=0.06)
