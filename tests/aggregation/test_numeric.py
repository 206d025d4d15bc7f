"""Reliability-weighted median for numeric answers."""

import numpy as np
import pytest

from crowd.aggregation import weighted_median


def test_median_of_odd_and_even_counts_takes_the_lower_middle():
    task = np.array([0, 0, 0, 1, 1])
    worker = np.array([0, 1, 2, 0, 1])
    value = np.array([3.0, 1.0, 2.0, 5.0, 4.0])

    res = weighted_median(task, worker, value)

    assert res.values.tolist() == [2.0, 4.0]
    assert res.n_answers.tolist() == [3, 2]


def test_an_outlier_does_not_move_the_median():
    res = weighted_median(np.zeros(4, dtype=int), np.arange(4), np.array([10.0, 11.0, 10.0, 1000.0]))

    assert res.values.tolist() == [10.0]
    np.testing.assert_allclose(res.confidence, [0.5])  # two of four answers equal the median
    assert res.spread.tolist() == [0.0]  # lower median of |deviations| 0, 0, 1, 990


def test_weights_let_a_trusted_worker_decide():
    task = np.zeros(3, dtype=int)

    res = weighted_median(task, np.arange(3), np.array([1.0, 2.0, 10.0]), [1.0, 1.0, 5.0])

    assert res.values.tolist() == [10.0]
    np.testing.assert_allclose(res.confidence, [5 / 7])


def test_tolerance_counts_near_answers_as_agreeing():
    task = np.zeros(4, dtype=int)
    value = np.array([100.0, 101.0, 99.0, 150.0])

    res = weighted_median(task, np.arange(4), value, tolerance=1.0)

    assert res.values.tolist() == [100.0]
    np.testing.assert_allclose(res.confidence, [0.75])
    np.testing.assert_allclose(res.worker_quality, [1.0, 1.0, 1.0, 0.0])
    np.testing.assert_allclose(res.worker_error, [0.0, 1.0, 1.0, 50.0])


def test_gold_replaces_the_consensus_and_zero_weight_tasks_fall_back_to_equal_weights():
    task = np.array([0, 0, 1, 1, 1])
    worker = np.array([0, 1, 0, 1, 2])
    value = np.array([1.0, 2.0, 7.0, 8.0, 9.0])

    res = weighted_median(task, worker, value, [0.0, 0.0, 0.0], gold={0: 1.5}, n_tasks=3)

    assert res.values[0] == 1.5 and res.confidence[0] == 1.0
    assert res.values[1] == 8.0
    assert np.isnan(res.values[2]) and res.confidence[2] == 0.0


def test_single_worker_and_invalid_values():
    res = weighted_median(np.array([0, 1]), np.array([0, 0]), np.array([4.0, -2.5]))
    assert res.values.tolist() == [4.0, -2.5]

    with pytest.raises(ValueError, match="finite"):
        weighted_median(np.array([0]), np.array([0]), np.array([np.nan]))
    with pytest.raises(ValueError, match="input is empty"):
        weighted_median(np.array([], dtype=int), np.array([], dtype=int), np.array([]))
