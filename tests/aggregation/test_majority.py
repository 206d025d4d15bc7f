"""Majority and reliability-weighted votes on hand-checkable cases."""

import numpy as np
import pytest

from crowd.aggregation import accuracy_to_weights, majority_vote, weighted_vote

# Three tasks, three workers: task 0 is unanimous (1), task 1 is 2-1 for class 0, task 2 is a 1-1 tie.
TASK = np.array([0, 0, 0, 1, 1, 1, 2, 2])
WORKER = np.array([0, 1, 2, 0, 1, 2, 0, 1])
LABEL = np.array([1, 1, 1, 0, 0, 1, 1, 0])


def test_majority_vote_counts_votes_and_reports_vote_shares():
    res = majority_vote(TASK, WORKER, LABEL)

    assert res.labels.tolist() == [1, 0, 0]
    np.testing.assert_allclose(res.confidence, [1.0, 2 / 3, 0.5])
    np.testing.assert_allclose(res.posteriors, [[0.0, 1.0], [2 / 3, 1 / 3], [0.5, 0.5]])
    assert res.n_answers.tolist() == [3, 3, 2]
    assert res.method == "majority"


def test_majority_tie_goes_to_the_lowest_class_code():
    res = majority_vote(np.array([0, 0, 0, 0]), np.array([0, 1, 2, 3]), np.array([2, 1, 2, 1]))

    assert res.labels.tolist() == [1]
    assert res.confidence.tolist() == [0.5]


def test_worker_quality_is_agreement_with_the_consensus():
    res = majority_vote(TASK, WORKER, LABEL)

    # Consensus is [1, 0, 0] (task 2's tie goes to 0). Worker 0 answered 1, 0, 1: two of three agree;
    # worker 2 answered 1, 1: one of two.
    np.testing.assert_allclose(res.worker_quality, [2 / 3, 1.0, 1 / 2])


def test_gold_overrides_the_vote_with_full_confidence():
    res = majority_vote(TASK, WORKER, LABEL, gold={1: 1})

    assert res.labels.tolist() == [1, 1, 0]
    assert res.confidence[1] == 1.0


def test_tasks_without_answers_get_no_label():
    res = majority_vote(np.array([0, 2]), np.array([0, 0]), np.array([1, 1]), n_tasks=4, gold={3: 0})

    assert res.labels.tolist() == [1, -1, 1, 0]
    assert res.confidence.tolist() == [1.0, 0.0, 1.0, 1.0]
    assert res.posteriors[1].tolist() == [0.0, 0.0]


def test_single_worker_decides_every_task():
    res = majority_vote(np.array([0, 1, 2]), np.array([0, 0, 0]), np.array([2, 0, 1]))

    assert res.labels.tolist() == [2, 0, 1]
    assert res.worker_quality.tolist() == [1.0]


def test_weighted_vote_lets_a_trusted_worker_outvote_two_others():
    res = weighted_vote(np.array([0, 0, 0]), np.array([0, 1, 2]), np.array([1, 0, 0]), [3.0, 1.0, 1.0])

    assert res.labels.tolist() == [1]
    np.testing.assert_allclose(res.confidence, [0.6])
    assert res.method == "weighted"


def test_weighted_vote_with_all_zero_weights_on_a_task_falls_back_to_counting():
    res = weighted_vote(np.array([0, 0, 0]), np.array([0, 1, 2]), np.array([1, 0, 0]), [0.0, 0.0, 0.0])

    assert res.labels.tolist() == [0]
    np.testing.assert_allclose(res.confidence, [2 / 3])


def test_weighted_vote_without_weights_uses_agreement_with_the_majority():
    # Majority consensus is [1, 0, 0] (task 2 ties and goes to 0). Agreement weights: worker 0 2/3,
    # worker 1 1, worker 2 1/3, so on task 2 worker 0's 1 (2/3) beats worker 2's 0 (1/3).
    task = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    worker = np.array([0, 1, 2, 0, 1, 2, 0, 2])
    label = np.array([1, 1, 0, 0, 0, 1, 1, 0])

    res = weighted_vote(task, worker, label)

    assert res.labels.tolist() == [1, 0, 1]
    np.testing.assert_allclose(res.confidence[2], 2 / 3)


def test_negative_weights_are_rejected():
    with pytest.raises(ValueError, match="non-negative"):
        weighted_vote(TASK, WORKER, LABEL, [1.0, -1.0, 1.0])


def test_accuracy_to_weights_is_log_odds_and_zero_at_chance():
    weights = accuracy_to_weights([0.75, 0.5, 0.25, 1.0], n_classes=2)

    np.testing.assert_allclose(weights[:3], [np.log(3.0), 0.0, 0.0])
    assert np.isfinite(weights[3]) and weights[3] > 6
    np.testing.assert_allclose(accuracy_to_weights([0.5], n_classes=4), [np.log(3.0)])
