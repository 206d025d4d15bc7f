"""Multi-label answers: one binary Dawid-Skene model per label, fitted in one stacked run."""

import numpy as np
import pytest

from crowd.aggregation import encode_multilabel, multilabel_dawid_skene


def _simulated(seed: int = 0):
    """Three labels; workers 0-3 tick correctly 90% of the time, worker 4 ticks label 2 always."""
    rng = np.random.default_rng(seed)
    n_tasks, n_workers, n_labels = 200, 5, 3
    truth = rng.random((n_tasks, n_labels)) < np.array([0.3, 0.5, 0.2])
    task = np.repeat(np.arange(n_tasks), n_workers)
    worker = np.tile(np.arange(n_workers), n_tasks)
    flip = rng.random((len(task), n_labels)) < 0.1
    ticks = truth[task] ^ flip
    ticks[worker == 4, 2] = True
    return task, worker, ticks.astype(int), truth


def test_recovers_each_label_and_learns_per_label_skill():
    task, worker, ticks, truth = _simulated()

    res = multilabel_dawid_skene(task, worker, ticks)

    assert (res.labels == truth).mean() > 0.97
    assert res.labels.shape == (200, 3)
    assert ((res.confidence >= 0.5) & (res.confidence <= 1.0)).all()
    # Worker 4 is fine on labels 0 and 1 but useless on label 2.
    assert res.worker_quality[4, 0] > 0.8 and res.worker_quality[4, 2] < 0.5


def test_gold_sets_clamp_their_tasks():
    task, worker, ticks, _ = _simulated(seed=1)

    res = multilabel_dawid_skene(task, worker, ticks, gold={0: [0, 2]})

    assert res.labels[0].tolist() == [True, False, True]
    assert res.confidence[0].tolist() == [1.0, 1.0, 1.0]


def test_hand_checkable_unanimous_sets_from_encoded_answers():
    indicators, names = encode_multilabel([{"cat"}, {"cat"}, {"dog", "cat"}, {"dog", "cat"}])
    task = np.array([0, 0, 1, 1])
    worker = np.array([0, 1, 0, 1])

    res = multilabel_dawid_skene(task, worker, indicators)

    assert names.tolist() == ["cat", "dog"]
    assert res.labels.tolist() == [[True, False], [True, True]]


def test_rejects_non_binary_indicators():
    with pytest.raises(ValueError, match="0 and 1"):
        multilabel_dawid_skene(np.array([0]), np.array([0]), np.array([[2]]))
