"""Dawid-Skene (full and one-coin) on hand-checkable and simulated crowds."""

import numpy as np
import pytest

from crowd.aggregation import (
    EMPolicy,
    confusion_counts,
    confusion_from_counts,
    dawid_skene,
    majority_vote,
    one_coin_dawid_skene,
    posteriors_from_model,
)

from .fixtures import simulate


def test_unanimous_answers_give_that_label_with_high_confidence():
    task = np.array([0, 0, 0, 1, 1, 1])
    worker = np.array([0, 1, 2, 0, 1, 2])
    label = np.array([1, 1, 1, 0, 0, 0])

    res = dawid_skene(task, worker, label)

    assert res.labels.tolist() == [1, 0]
    assert (res.confidence > 0.9).all()
    np.testing.assert_allclose(res.posteriors.sum(axis=1), 1.0)
    assert res.converged


def test_exact_tie_goes_to_the_lowest_class_code():
    # Two workers, one task, opposite answers: the model is symmetric, so the posterior is 50/50.
    res = dawid_skene(np.array([0, 0]), np.array([0, 1]), np.array([1, 0]))

    assert res.labels.tolist() == [0]
    np.testing.assert_allclose(res.confidence, [0.5])


def test_single_worker_is_taken_at_their_word():
    res = dawid_skene(np.array([0, 1, 2, 3]), np.zeros(4, dtype=int), np.array([2, 0, 1, 2]))

    assert res.labels.tolist() == [2, 0, 1, 2]


def test_beats_majority_when_three_experts_face_four_spammers():
    task, worker, label, truth = simulate([0.9, 0.9, 0.9, 0.5, 0.5, 0.5, 0.5], n_tasks=400, seed=1)

    ds = dawid_skene(task, worker, label)
    mv = majority_vote(task, worker, label)

    # The best possible here is the experts' own majority, right 97.2% of the time.
    ds_acc = (ds.labels == truth).mean()
    assert ds_acc > 0.95
    assert ds_acc > (mv.labels == truth).mean() + 0.05
    assert ds.worker_quality[:3].min() > 0.85
    assert ds.worker_quality[3:].max() < 0.6


def test_a_worker_who_answers_everything_wrong_is_learned_and_inverted():
    task, worker, label, truth = simulate([0.8, 0.8, 0.8], n_tasks=300, seed=2)
    liar_tasks = np.arange(300)
    task = np.concatenate([task, liar_tasks])
    worker = np.concatenate([worker, np.full(300, 3)])
    label = np.concatenate([label, 1 - truth[liar_tasks]])

    res = dawid_skene(task, worker, label)
    honest_only = dawid_skene(task[:900], worker[:900], label[:900])

    # Inverted, the liar is a perfect worker: only tasks where all three honest workers err stay wrong.
    assert (res.labels == truth).mean() > 0.98
    assert (res.labels == truth).mean() > (honest_only.labels == truth).mean() + 0.05
    assert res.worker_quality[3] < 0.05
    assert res.confusion is not None
    assert res.confusion[3, 0, 1] > 0.95 and res.confusion[3, 1, 0] > 0.95


def test_all_gold_tasks_keep_their_labels_and_give_exact_confusion_counts():
    task = np.array([0, 1, 2, 3])
    worker = np.zeros(4, dtype=int)
    label = np.array([0, 1, 1, 1])
    gold = np.array([0, 0, 1, 1])

    res = dawid_skene(task, worker, label, gold=gold)

    assert res.labels.tolist() == [0, 0, 1, 1]
    assert res.confidence.tolist() == [1.0, 1.0, 1.0, 1.0]
    # [true, answered] counts (true 0: one right, one wrong; true 1: two right) + 0.6 on the diagonal.
    assert res.confusion is not None
    np.testing.assert_allclose(res.confusion[0], [[1.6 / 2.6, 1 / 2.6], [0.0, 1.0]], atol=1e-12)
    assert res.converged


def test_gold_teaches_which_worker_to_trust():
    # Workers 0 and 1 always disagree; gold shows worker 1 is the right one.
    task = np.repeat(np.arange(6), 2)
    worker = np.tile([0, 1], 6)
    truth = np.array([0, 1, 0, 1, 1, 0])
    label = np.ravel(np.column_stack([1 - truth, truth]))

    res = dawid_skene(task, worker, label, gold={0: 0, 1: 1})

    assert res.labels.tolist() == truth.tolist()
    assert res.worker_quality[1] > res.worker_quality[0]


def test_prior_confusion_from_history_breaks_a_disagreement():
    task = np.array([0, 0])
    worker = np.array([0, 1])
    label = np.array([0, 1])
    history = np.zeros((2, 2, 2))
    history[1] = [[20, 0], [0, 20]]  # worker 1 was right 40 times before
    history[0] = [[5, 5], [5, 5]]  # worker 0 was a coin

    res = dawid_skene(task, worker, label, prior_confusion=history)

    assert res.labels.tolist() == [1]
    assert res.confidence[0] > 0.9


def test_smoothing_keeps_every_confusion_cell_positive():
    task, worker, label, _ = simulate([0.9, 0.9, 0.9], n_tasks=50, n_classes=3, seed=3)

    res = dawid_skene(task, worker, label, smoothing=0.5)

    assert res.confusion is not None
    assert res.confusion.min() > 0.0
    np.testing.assert_allclose(res.confusion.sum(axis=2), 1.0)


def test_a_flat_start_escapes_and_reaches_the_majority_started_fit():
    task, worker, label, truth = simulate([0.9, 0.8, 0.7, 0.65, 0.6], n_tasks=200, seed=4)
    flat = np.full((200, 2), 0.5)

    res = dawid_skene(task, worker, label, init_posteriors=flat)
    from_majority = dawid_skene(task, worker, label)

    # With flat posteriors the first M-step sees no signal but the diagonal prior; the likelihood
    # barely moves at first, and the policy must not take that for convergence.
    assert res.n_iter > from_majority.n_iter
    assert res.converged
    assert res.labels.tolist() == from_majority.labels.tolist()
    assert (res.labels == truth).mean() > 0.9


def test_min_iter_is_honoured():
    task, worker, label, _ = simulate([0.9, 0.8, 0.7], n_tasks=50, seed=4)

    assert dawid_skene(task, worker, label, policy=EMPolicy(min_iter=30)).n_iter >= 30


def test_policy_stops_at_max_iter_and_says_so():
    task, worker, label, _ = simulate([0.9, 0.6, 0.6], n_tasks=100, seed=5)

    res = dawid_skene(task, worker, label, policy=EMPolicy(max_iter=1, min_iter=1))

    assert res.n_iter == 1
    assert not res.converged


def test_invalid_policy_and_pseudo_counts_are_rejected():
    with pytest.raises(ValueError, match="min_iter"):
        EMPolicy(min_iter=0)
    with pytest.raises(ValueError, match="smoothing"):
        dawid_skene(np.array([0]), np.array([0]), np.array([0]), smoothing=-1.0)


def test_unanswered_task_gets_no_label_and_gold_only_task_gets_its_gold():
    res = dawid_skene(np.array([0, 0]), np.array([0, 1]), np.array([1, 1]), n_tasks=3, gold={2: 0})

    assert res.labels.tolist() == [1, -1, 0]
    assert res.confidence[1] == 0.0


def test_label_switching_does_not_happen_with_a_majority_of_decent_workers():
    task, worker, label, truth = simulate([0.7] * 7, n_tasks=200, n_classes=4, per_task=5, seed=6)

    res = dawid_skene(task, worker, label)

    assert (res.labels == truth).mean() > 0.85


def test_posteriors_from_model_reproduce_the_fit():
    task, worker, label, _ = simulate([0.9, 0.8, 0.7, 0.6], n_tasks=200, n_classes=3, seed=7)
    res = dawid_skene(task, worker, label, policy=EMPolicy(posterior_tol=1e-6, tol=1e-10))
    assert res.confusion is not None and res.class_priors is not None

    post = posteriors_from_model(task, worker, label, res.confusion, res.class_priors)

    np.testing.assert_allclose(post, res.posteriors, atol=1e-4)


def test_confusion_counts_spread_each_answer_over_the_task_posterior():
    # task 0 is class 0 for sure, task 1 is 75/25; worker 0 answers 1 on both, worker 1 answers 0
    posteriors = np.array([[1.0, 0.0], [0.75, 0.25]])
    task, worker, label = np.array([0, 1, 1]), np.array([0, 0, 1]), np.array([1, 1, 0])

    counts = confusion_counts(task, worker, label, posteriors)

    # [worker, true, answered]
    np.testing.assert_allclose(counts[0], [[0, 1.75], [0, 0.25]])
    np.testing.assert_allclose(counts[1], [[0.75, 0], [0.25, 0]])


def test_a_fits_counts_give_back_its_map_confusion():
    task, worker, label, _ = simulate([0.9, 0.8, 0.7, 0.6], n_tasks=200, n_classes=3, seed=7)
    res = dawid_skene(task, worker, label, policy=EMPolicy(posterior_tol=1e-6, tol=1e-10))

    counts = confusion_counts(task, worker, label, res.posteriors)

    # the default fit is the MAP under Dirichlet(1 + 0.6*I): counts + 0.6*I, normalised per true class
    np.testing.assert_allclose(confusion_from_counts(counts, smoothing=0.0), res.confusion, atol=1e-4)


def test_confusion_from_counts_is_the_posterior_mean():
    counts = np.array([[[3.0, 1.0], [0.0, 2.0]]])

    rows = confusion_from_counts(counts)

    # Dirichlet(1 + 0.6*I) prior: (3+1.6, 1+1) / 6.6 and (0+1, 2+1.6) / 4.6
    np.testing.assert_allclose(rows[0], [[4.6 / 6.6, 2 / 6.6], [1 / 4.6, 3.6 / 4.6]])
    with pytest.raises(ValueError, match="non-negative"):
        confusion_from_counts(-counts)
    with pytest.raises(ValueError, match="shape"):
        confusion_from_counts(counts[0])


def test_one_coin_learns_accuracies_and_labels():
    task, worker, label, truth = simulate([0.95, 0.85, 0.65, 0.55], n_tasks=500, n_classes=3, seed=8)

    res = one_coin_dawid_skene(task, worker, label)

    assert (res.labels == truth).mean() > 0.95
    np.testing.assert_allclose(res.worker_quality, [0.95, 0.85, 0.65, 0.55], atol=0.05)
    assert res.confusion is None
    assert res.method == "one_coin_dawid_skene"


def test_one_coin_with_gold_and_history():
    task, worker, label, truth = simulate([0.9, 0.9, 0.6], n_tasks=100, seed=9)

    res = one_coin_dawid_skene(
        task, worker, label, gold={0: int(truth[0])}, prior_correct=np.array([[9, 1], [9, 1], [1, 1]])
    )

    assert res.labels[0] == truth[0] and res.confidence[0] == 1.0
    assert (res.labels == truth).mean() > 0.9
