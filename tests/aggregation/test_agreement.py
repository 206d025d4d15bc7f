"""Agreement metrics against published worked examples and the krippendorff package."""

import numpy as np
import pytest

from crowd.aggregation import fleiss_kappa, krippendorff_alpha, pairwise_cohen_kappa

# Krippendorff's worked example ("Computing Krippendorff's alpha-reliability", 2011): 4 coders,
# 12 units, values 1-5, missing as NaN. Published: nominal 0.743, interval 0.849.
RELIABILITY = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, np.nan, np.nan, np.nan],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, np.nan, 3],
        [np.nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, np.nan],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, np.nan],
    ]
)


def _rows(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    coder, unit = np.nonzero(~np.isnan(matrix))
    return unit, coder, matrix[coder, unit]


def test_alpha_matches_the_published_worked_example():
    unit, _, value = _rows(RELIABILITY)

    assert krippendorff_alpha(unit, value.astype(int), level="nominal") == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(unit, value, level="interval") == pytest.approx(0.849, abs=5e-4)


@pytest.mark.parametrize("level", ["nominal", "interval"])
def test_alpha_matches_the_krippendorff_package_on_random_sparse_data(level):
    krippendorff = pytest.importorskip("krippendorff")
    rng = np.random.default_rng(0)
    data = rng.integers(0, 4, size=(6, 80)).astype(float)
    data[:, :40] = data[0, :40]  # half the units agree fully
    data[rng.random(data.shape) < 0.35] = np.nan
    unit, _, value = _rows(data)

    ours = krippendorff_alpha(unit, value.astype(int) if level == "nominal" else value, level=level)

    assert ours == pytest.approx(
        krippendorff.alpha(reliability_data=data, level_of_measurement=level), rel=1e-9
    )


def test_alpha_is_nan_when_undefined_and_one_for_perfect_agreement():
    assert np.isnan(krippendorff_alpha(np.array([0, 1]), np.array([1, 1])))  # nothing pairable
    assert np.isnan(krippendorff_alpha(np.array([0, 0]), np.array([1, 1])))  # one value only
    assert krippendorff_alpha(np.array([0, 0, 1, 1]), np.array([0, 0, 1, 1])) == 1.0


# Fleiss (1971) as worked on Wikipedia: 10 subjects, 14 raters, 5 categories; counts per category.
FLEISS_TABLE = np.array(
    [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
)


def _from_table(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    task, label = np.nonzero(table)
    counts = table[task, label]
    return np.repeat(task, counts), np.repeat(label, counts)


def test_fleiss_kappa_matches_the_hand_computed_example():
    task, label = _from_table(FLEISS_TABLE)

    # P_bar = 3.780 / 10 = 0.378; p_j = (.143, .200, .279, .150, .229), P_e = 0.2128; kappa = 0.210.
    assert fleiss_kappa(task, label) == pytest.approx(0.20993, abs=1e-5)


def test_fleiss_kappa_with_varying_raters_per_task():
    # Task 0: 3 raters all class 0 (P = 1); task 1: 2 raters split (P = 0); task 2: one rater (left out).
    task = np.array([0, 0, 0, 1, 1, 2])
    label = np.array([0, 0, 0, 0, 1, 1])

    # P_bar = 0.5; p = (4/5, 1/5), P_e = 0.68; kappa = (0.5 - 0.68) / 0.32
    assert fleiss_kappa(task, label) == pytest.approx(-0.5625)


def test_cohen_kappa_matches_the_hand_computed_example():
    # 50 items: both yes 20, A yes / B no 5, A no / B yes 10, both no 15.
    # p_o = 0.7; p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5; kappa = 0.4.
    a = np.array([1] * 20 + [1] * 5 + [0] * 10 + [0] * 15)
    b = np.array([1] * 20 + [0] * 5 + [1] * 10 + [0] * 15)
    task = np.concatenate([np.arange(50), np.arange(50)])
    worker = np.repeat([0, 1], 50)

    res = pairwise_cohen_kappa(task, worker, np.concatenate([a, b]), min_shared=50)

    assert res.worker_a.tolist() == [0] and res.worker_b.tolist() == [1]
    assert res.n_shared.tolist() == [50]
    np.testing.assert_allclose(res.kappa, [0.4])
    np.testing.assert_allclose(res.worker_mean, [0.4, 0.4])


def test_pairwise_kappa_only_for_pairs_with_enough_shared_tasks():
    # Workers 0 and 1 share 3 tasks; worker 2 shares 1 task with each.
    task = np.array([0, 1, 2, 0, 1, 2, 3, 3, 4])
    worker = np.array([0, 0, 0, 1, 1, 1, 0, 2, 2])
    label = np.array([0, 1, 1, 0, 1, 0, 1, 1, 0])

    res = pairwise_cohen_kappa(task, worker, label, min_shared=2)

    assert list(zip(res.worker_a.tolist(), res.worker_b.tolist(), strict=True)) == [(0, 1)]
    # p_o = 2/3; marginals A (1/3, 2/3), B (2/3, 1/3): p_e = 4/9; kappa = (2/9) / (5/9) = 0.4
    np.testing.assert_allclose(res.kappa, [0.4])
    assert np.isnan(res.worker_mean[2])


@pytest.mark.parametrize(
    ("task", "worker", "label"),
    [
        ([0], [0], [0]),  # a single answer
        ([0, 1, 0], [0, 0, 1], [0, 1, 0]),  # two workers sharing one task, fewer than min_shared
    ],
)
def test_pairwise_kappa_without_any_pair_is_empty(task, worker, label):
    res = pairwise_cohen_kappa(np.array(task), np.array(worker), np.array(label), min_shared=2)

    assert res.worker_a.size == res.worker_b.size == res.n_shared.size == res.kappa.size == 0
    assert res.worker_mean.shape == (max(worker) + 1,) and np.isnan(res.worker_mean).all()


def test_pairwise_kappa_is_nan_when_both_always_give_one_class_and_rejects_duplicates():
    res = pairwise_cohen_kappa(
        np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]), np.array([1, 1, 1, 1]), min_shared=1
    )
    assert np.isnan(res.kappa).all()

    with pytest.raises(ValueError, match="more than once"):
        pairwise_cohen_kappa(np.array([0, 0]), np.array([0, 0]), np.array([1, 0]))
