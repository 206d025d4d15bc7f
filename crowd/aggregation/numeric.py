"""Numeric answers: reliability-weighted median per task."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from ._encode import FloatArray, IntArray, check_codes, worker_weights

# Relative slack when testing "cumulative weight reaches half", so float sums like 0.1 + 0.2 + 0.2
# still count as exactly half.
_HALF_SLACK = 1e-12


@dataclass(frozen=True)
class NumericResult:
    """Per-task consensus value and per-worker closeness to it.

    - ``values[t]``: the weighted median; NaN for a task with neither answers nor gold.
    - ``confidence[t]``: share of the task's answer weight within ``tolerance`` of the median
      (1.0 on gold tasks, 0.0 where the value is NaN).
    - ``spread[t]``: weighted median absolute deviation from the median (0 on gold tasks).
    - ``worker_quality[w]``: share of the worker's answers within ``tolerance`` of the consensus.
    - ``worker_error[w]``: mean absolute deviation of the worker's answers from the consensus.
    Both worker figures are NaN for a worker without answers.
    """

    values: FloatArray
    confidence: FloatArray
    spread: FloatArray
    worker_quality: FloatArray
    worker_error: FloatArray
    n_answers: IntArray


def _weighted_median(task_idx: IntArray, value: FloatArray, weight: FloatArray, n_tasks: int) -> FloatArray:
    """Lower weighted median per task, vectorised: sort by (task, value), then in each task take the
    first value whose cumulative weight reaches half the task's total. NaN for tasks with no rows."""
    order = np.lexsort((value, task_idx))
    t, v, w = task_idx[order], value[order], weight[order]
    total = np.bincount(t, weights=w, minlength=n_tasks)
    cum = np.cumsum(w)
    before = cum - w  # cumulative weight of earlier rows, all tasks
    group_start = np.searchsorted(t, np.arange(n_tasks))
    base = np.where(group_start > 0, before[np.minimum(group_start, len(t) - 1)], 0.0)
    within = cum - base[t]
    reached = within >= 0.5 * total[t] * (1.0 - _HALF_SLACK)
    # `reached` is monotone inside a task, so the first True sits after all the False ones.
    n_before = np.bincount(t, weights=(~reached).astype(np.float64), minlength=n_tasks).astype(np.intp)
    counts = np.bincount(t, minlength=n_tasks)
    pick = np.minimum(group_start + n_before, len(t) - 1)
    return np.where(counts > 0, v[pick], np.nan)


def weighted_median(
    task_idx: ArrayLike,
    worker_idx: ArrayLike,
    value: ArrayLike,
    weights: ArrayLike | None = None,
    *,
    gold: Mapping[int, float] | ArrayLike | None = None,
    tolerance: float = 0.0,
    n_tasks: int | None = None,
    n_workers: int | None = None,
) -> NumericResult:
    """Reliability-weighted median of numeric answers per task.

    Assumes answers scatter around the true value with occasional gross errors: the median ignores
    outliers that a mean would follow, and weights (per worker, non-negative, e.g. gold-based
    reliability) let trusted workers count more. Tie policy: the *lower* weighted median, i.e. the
    smallest answer whose cumulative weight reaches half the task's weight, so the consensus is always
    one of the answers given (with two equal-weight answers, the smaller). A task whose workers all
    weigh 0 falls back to equal weights. Gold (``{task_idx: value}`` or a per-task float array with
    NaN for unknown) replaces the consensus on its tasks. Raises ``ValueError`` on empty input.
    """
    v = np.asarray(value, dtype=np.float64)
    c = check_codes(
        task_idx, worker_idx, np.zeros(v.shape, dtype=np.intp), n_tasks=n_tasks, n_workers=n_workers
    )
    if v.shape != c.task_idx.shape or not np.all(np.isfinite(v)):
        raise ValueError("value must be finite numbers, one per answer")
    if not (np.isfinite(tolerance) and tolerance >= 0):
        raise ValueError("tolerance must be finite and non-negative")
    w = worker_weights(weights, c.n_workers)[c.worker_idx]
    task_weight = np.bincount(c.task_idx, weights=w, minlength=c.n_tasks)
    w = np.where(task_weight[c.task_idx] > 0, w, 1.0)
    task_weight = np.bincount(c.task_idx, weights=w, minlength=c.n_tasks)
    consensus = _weighted_median(c.task_idx, v, w, c.n_tasks)
    g = _numeric_gold(gold, c.n_tasks)
    is_gold = ~np.isnan(g)
    consensus[is_gold] = g[is_gold]
    deviation = np.abs(v - consensus[c.task_idx])
    close = deviation <= tolerance * (1.0 + _HALF_SLACK)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(c.task_idx, weights=w * close, minlength=c.n_tasks) / task_weight
    confidence = np.where(is_gold, 1.0, np.nan_to_num(confidence))
    spread = np.nan_to_num(_weighted_median(c.task_idx, deviation, w, c.n_tasks))
    spread[is_gold] = 0.0
    n_answers = np.bincount(c.task_idx, minlength=c.n_tasks)
    per_worker = np.bincount(c.worker_idx, minlength=c.n_workers)
    with np.errstate(invalid="ignore", divide="ignore"):
        quality = (
            np.bincount(c.worker_idx, weights=close.astype(np.float64), minlength=c.n_workers) / per_worker
        )
        error = np.bincount(c.worker_idx, weights=deviation, minlength=c.n_workers) / per_worker
    quality[per_worker == 0] = np.nan
    error[per_worker == 0] = np.nan
    return NumericResult(consensus, confidence, spread, quality, error, n_answers)


def _numeric_gold(gold: Mapping[int, float] | ArrayLike | None, n_tasks: int) -> FloatArray:
    out = np.full(n_tasks, np.nan)
    if gold is None:
        return out
    if isinstance(gold, Mapping):
        if gold:
            keys = np.fromiter(gold.keys(), dtype=np.intp, count=len(gold))
            if keys.min() < 0 or keys.max() >= n_tasks:
                raise ValueError("gold names a task code outside [0, n_tasks)")
            out[keys] = np.fromiter(gold.values(), dtype=np.float64, count=len(gold))
        return out
    arr = np.asarray(gold, dtype=np.float64)
    if arr.shape != (n_tasks,):
        raise ValueError(f"gold as an array must have shape ({n_tasks},), NaN for unknown")
    return arr.copy()
