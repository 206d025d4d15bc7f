"""Multi-label answers ("tick every tag that applies"): one binary Dawid-Skene model per label."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._encode import FloatArray, IntArray, check_codes
from .em import DEFAULT_POLICY, EMPolicy, dawid_skene


@dataclass(frozen=True)
class MultiLabelResult:
    """Per task and label: whether the label applies, and how sure we are.

    - ``labels``: ``(n_tasks, n_labels)`` bool; all False for a task with neither answers nor gold.
    - ``probability``: posterior that the label applies (0 where the task has no answers or gold).
    - ``confidence``: posterior of the decision taken (``max(p, 1 - p)``; 0 without answers or gold).
    - ``worker_quality``: ``(n_workers, n_labels)``, chance the worker's tick/no-tick is right.
    - ``n_iter``/``converged``: of the single stacked EM fit.
    """

    labels: NDArray[np.bool_]
    probability: FloatArray
    confidence: FloatArray
    worker_quality: FloatArray
    n_answers: IntArray
    n_iter: int
    converged: bool


def _multilabel_gold(
    gold: Mapping[int, Iterable[int]] | ArrayLike | None, n_tasks: int, n_labels: int
) -> IntArray:
    out = np.full((n_tasks, n_labels), -1, dtype=np.intp)
    if gold is None:
        return out
    if isinstance(gold, Mapping):
        for task, tags in gold.items():  # a gold set is small and rare: a plain loop is clearer here
            if not 0 <= int(task) < n_tasks:
                raise ValueError("gold names a task code outside [0, n_tasks)")
            out[int(task)] = 0
            out[int(task), np.fromiter(tags, dtype=np.intp)] = 1
        return out
    arr = np.asarray(gold)
    if arr.shape != (n_tasks, n_labels) or not np.isin(arr, (-1, 0, 1)).all():
        raise ValueError(
            f"gold as an array must have shape ({n_tasks}, {n_labels}) with -1 (unknown), 0 or 1"
        )
    return arr.astype(np.intp)


def multilabel_dawid_skene(
    task_idx: ArrayLike,
    worker_idx: ArrayLike,
    indicators: ArrayLike,
    *,
    gold: Mapping[int, Iterable[int]] | ArrayLike | None = None,
    n_tasks: int | None = None,
    n_workers: int | None = None,
    policy: EMPolicy = DEFAULT_POLICY,
    **ds_options: Any,
) -> MultiLabelResult:
    """Multi-label consensus as one binary Dawid-Skene model per label.

    ``indicators`` is ``(n_answers, n_labels)`` 0/1 (``encode_multilabel`` builds it from sets): each
    answer says yes or no to every label. Assumption: labels are independent given the task, and a
    worker's skill is per label (2x2 confusion and own class prior per label), so a worker who
    over-ticks one tag does not lose credit on the others. All labels are fitted in one stacked EM
    run (task x label as the task, worker x label as the worker, one class prior per label), which is
    the same as separate per-label fits with a common stopping rule. ``gold``: ``{task_idx: label
    codes that apply}`` (the others do not) or an ``(n_tasks, n_labels)`` array of -1/0/1.
    ``ds_options`` go to ``dawid_skene`` (``smoothing``, ``diagonal_prior``). Tie rule: an exact
    0.5 posterior means "does not apply".
    """
    y = np.asarray(indicators)
    if y.ndim != 2 or y.shape[1] == 0:
        raise ValueError("indicators must be a 2-d (n_answers, n_labels) 0/1 array with at least one label")
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError("indicators must hold only 0 and 1")
    n_labels = y.shape[1]
    c = check_codes(
        task_idx, worker_idx, np.zeros(len(y), dtype=np.intp), n_tasks=n_tasks, n_workers=n_workers
    )
    g = _multilabel_gold(gold, c.n_tasks, n_labels)
    j = np.arange(n_labels)
    stacked_task = (c.task_idx[:, None] * n_labels + j).ravel()
    stacked_worker = (c.worker_idx[:, None] * n_labels + j).ravel()
    res = dawid_skene(
        stacked_task,
        stacked_worker,
        y.astype(np.intp).ravel(),
        gold=g.ravel(),
        n_tasks=c.n_tasks * n_labels,
        n_workers=c.n_workers * n_labels,
        n_classes=2,
        prior_group=np.tile(j, c.n_tasks),
        policy=policy,
        **ds_options,
    )
    has = (res.labels >= 0).reshape(c.n_tasks, n_labels)
    probability = np.where(has, res.posteriors[:, 1].reshape(c.n_tasks, n_labels), 0.0)
    labels = has & (probability > 0.5)
    confidence = np.where(has, np.maximum(probability, 1.0 - probability), 0.0)
    # Per-label quality needs per-label class shares, not the pooled priors of the stacked fit.
    share = (probability.sum(axis=0) + 1.0) / (has.sum(axis=0) + 2.0)
    assert res.confusion is not None
    confusion = res.confusion.reshape(c.n_workers, n_labels, 2, 2)
    quality = confusion[:, :, 0, 0] * (1.0 - share) + confusion[:, :, 1, 1] * share
    quality[np.bincount(c.worker_idx, minlength=c.n_workers) == 0] = np.nan
    return MultiLabelResult(
        labels=labels,
        probability=probability,
        confidence=confidence,
        worker_quality=quality,
        n_answers=np.bincount(c.task_idx, minlength=c.n_tasks),
        n_iter=res.n_iter,
        converged=res.converged,
    )
