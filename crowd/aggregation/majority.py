"""Voting: plain majority and reliability-weighted majority over coded answers."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike

from ._encode import FloatArray, IntArray, check_codes, gold_array, worker_weights
from .result import AggregationResult, finish


def vote_shares(
    task_idx: IntArray, label: IntArray, weight_per_answer: FloatArray, n_tasks: int, n_classes: int
) -> tuple[FloatArray, FloatArray]:
    """(weighted votes per task and class, per-task vote totals), without a loop over anything."""
    votes = np.bincount(
        task_idx * n_classes + label, weights=weight_per_answer, minlength=n_tasks * n_classes
    )
    votes = votes.reshape(n_tasks, n_classes)
    return votes, votes.sum(axis=1)


def _agreement(
    task_idx: IntArray, worker_idx: IntArray, label: IntArray, consensus: IntArray, n_workers: int
) -> FloatArray:
    """Share of each worker's answers that equal the consensus (NaN for workers without answers)."""
    hits = np.bincount(
        worker_idx, weights=(label == consensus[task_idx]).astype(np.float64), minlength=n_workers
    )
    n = np.bincount(worker_idx, minlength=n_workers)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, hits / np.maximum(n, 1), np.nan)


def _vote(
    task_idx: ArrayLike,
    worker_idx: ArrayLike,
    label: ArrayLike,
    weights: ArrayLike | None,
    gold: Mapping[int, int] | ArrayLike | None,
    n_tasks: int | None,
    n_workers: int | None,
    n_classes: int | None,
    method: str,
) -> AggregationResult:
    c = check_codes(task_idx, worker_idx, label, n_tasks=n_tasks, n_workers=n_workers, n_classes=n_classes)
    g = gold_array(gold, c.n_tasks, c.n_classes)
    w = worker_weights(weights, c.n_workers)
    votes, total = vote_shares(c.task_idx, c.label, w[c.worker_idx], c.n_tasks, c.n_classes)
    n_answers = np.bincount(c.task_idx, minlength=c.n_tasks)
    answered = n_answers > 0
    # A task whose voters all weigh 0 falls back to the unweighted count rather than to nothing.
    zero = answered & (total <= 0)
    if zero.any():
        plain, plain_total = vote_shares(c.task_idx, c.label, np.ones(len(c.label)), c.n_tasks, c.n_classes)
        votes[zero], total[zero] = plain[zero], plain_total[zero]
    post = np.divide(votes, total[:, None], out=np.zeros_like(votes), where=total[:, None] > 0)
    is_gold = g >= 0
    post[is_gold] = 0.0
    post[is_gold, g[is_gold]] = 1.0
    labels, conf, post = finish(post, answered, g)
    quality = _agreement(c.task_idx, c.worker_idx, c.label, labels, c.n_workers)
    return AggregationResult(labels, conf, post, quality, n_answers, method)


def majority_vote(
    task_idx: ArrayLike,
    worker_idx: ArrayLike,
    label: ArrayLike,
    *,
    gold: Mapping[int, int] | ArrayLike | None = None,
    n_tasks: int | None = None,
    n_workers: int | None = None,
    n_classes: int | None = None,
) -> AggregationResult:
    """Majority vote: every answer counts once; the baseline every other method must beat.

    Assumes all workers are equally reliable and answers are independent. ``confidence`` is the vote
    share of the winning class, not a calibrated probability. Tie rule: an exact tie goes to the
    lowest class code (so with ``encode``, the first label in sorted order). Gold tasks (a mapping
    ``{task_idx: label}`` or a per-task array with -1 for unknown) take their gold label with
    confidence 1. ``worker_quality`` is each worker's agreement with the consensus (it flatters
    workers on tasks with few answers, since a worker always agrees with a task they alone answered).
    Raises ``ValueError`` on empty or malformed input.
    """
    return _vote(task_idx, worker_idx, label, None, gold, n_tasks, n_workers, n_classes, "majority")


def weighted_vote(
    task_idx: ArrayLike,
    worker_idx: ArrayLike,
    label: ArrayLike,
    weights: ArrayLike | None = None,
    *,
    gold: Mapping[int, int] | ArrayLike | None = None,
    n_tasks: int | None = None,
    n_workers: int | None = None,
    n_classes: int | None = None,
) -> AggregationResult:
    """Reliability-weighted vote: each answer counts with its worker's weight.

    ``weights`` are per-worker and non-negative, e.g. ``accuracy_to_weights`` of the gold-based
    reliability (log-odds weights make this the Bayes-optimal vote when workers err uniformly at
    random). Without weights, each worker weighs their agreement with the majority vote (the "Wawa"
    scheme), which needs no gold. A task whose answering workers all weigh 0 falls back to plain
    counting. ``confidence`` is the winning class's share of the task's weight. Tie rule and gold
    handling are those of ``majority_vote``.
    """
    if weights is None:
        weights = np.nan_to_num(
            majority_vote(
                task_idx,
                worker_idx,
                label,
                gold=gold,
                n_tasks=n_tasks,
                n_workers=n_workers,
                n_classes=n_classes,
            ).worker_quality
        )
    return _vote(task_idx, worker_idx, label, weights, gold, n_tasks, n_workers, n_classes, "weighted")


def accuracy_to_weights(accuracy: ArrayLike, n_classes: int, *, floor: float = 1e-3) -> FloatArray:
    """Worker accuracy in [0, 1] -> log-odds vote weight ``log((K-1) p / (1-p))``, clipped at 0.

    A worker no better than chance (p <= 1/K) gets weight 0 rather than a negative weight, because
    with more than two classes a wrong answer does not say which other class is right. ``p`` is kept
    within ``[floor, 1-floor]`` so a perfect record gives a large but finite weight. A worker with no
    record yet (NaN) must be given a value first, e.g. the pool's mean accuracy.
    """
    p = np.clip(np.asarray(accuracy, dtype=np.float64), floor, 1.0 - floor)
    return np.maximum(np.log((n_classes - 1) * p / (1.0 - p)), 0.0)
