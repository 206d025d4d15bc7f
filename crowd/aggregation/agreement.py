"""Inter-annotator agreement: Krippendorff's alpha, Fleiss' kappa, pairwise Cohen's kappa.

Agreement says how reproducible the answers are, independent of any truth model: a batch with low
alpha has vague instructions or hard tasks, however confident the consensus looks. All three work on
coded answers (one row per answer) and return NaN where the statistic is undefined (no pairable
answers, or a single value used throughout, where chance agreement is already perfect).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike

from ._encode import FloatArray, IntArray, check_codes


def _codes(task_idx: ArrayLike, label: ArrayLike) -> tuple[IntArray, IntArray, int, int]:
    """Validate (task, class code) pairs; the worker does not matter for these two statistics."""
    t = np.asarray(task_idx)
    c = check_codes(t, np.zeros(t.shape, dtype=np.intp), label)
    return c.task_idx, c.label, c.n_tasks, c.n_classes


def krippendorff_alpha(
    task_idx: ArrayLike,
    value: ArrayLike,
    *,
    level: Literal["nominal", "interval"] = "nominal",
) -> float:
    """Krippendorff's alpha, ``1 - observed / expected disagreement``, for nominal or interval data.

    One row per answer; a task's answers are the values one unit got from its coders. Tasks with a
    single answer are not pairable and are left out (as in Krippendorff's definition), so varying
    numbers of answers per task need no special handling. ``nominal``: ``value`` holds class codes
    and any two different codes disagree fully. ``interval``: ``value`` holds numbers and
    disagreement is the squared difference. Computed from per-task sums (no coincidence matrix), so
    memory is linear in the answers even for many distinct numeric values. Returns NaN when there is
    no pairable task or all pairable values are equal. Raises ``ValueError`` on empty input.
    """
    t = np.asarray(task_idx)
    if level == "nominal":
        t, y, n_tasks, k = _codes(t, value)
        counts = np.bincount(t * k + y, minlength=n_tasks * k).reshape(n_tasks, k).astype(np.float64)
        m = counts.sum(axis=1)
        keep = m >= 2
        counts, m = counts[keep], m[keep]
        n = m.sum()
        if n == 0:
            return float("nan")
        observed = ((m**2 - (counts**2).sum(axis=1)) / (m - 1)).sum()
        n_c = counts.sum(axis=0)
        expected = n**2 - (n_c**2).sum()
    elif level == "interval":
        v = np.asarray(value, dtype=np.float64)
        t, _, n_tasks, _ = _codes(t, np.zeros(t.shape, dtype=np.intp))
        if v.shape != t.shape or not np.all(np.isfinite(v)):
            raise ValueError("value must be finite numbers, one per answer")
        m = np.bincount(t, minlength=n_tasks).astype(np.float64)
        keep = m[t] >= 2
        t, v = t[keep], v[keep]
        if len(v) == 0:
            return float("nan")
        # Centre first so sums of squares do not lose precision on large values.
        v = v - v.mean()
        s1 = np.bincount(t, weights=v, minlength=n_tasks)
        s2 = np.bincount(t, weights=v * v, minlength=n_tasks)
        has = m >= 2
        n = float(len(v))
        observed = (2.0 * (m[has] * s2[has] - s1[has] ** 2) / (m[has] - 1)).sum()
        expected = 2.0 * (n * (v * v).sum() - v.sum() ** 2)
    else:
        raise ValueError(f"level must be 'nominal' or 'interval', got {level!r}")
    if expected <= 0:
        return float("nan")
    return float(1.0 - (n - 1) * observed / expected)


def fleiss_kappa(task_idx: ArrayLike, label: ArrayLike, *, n_classes: int | None = None) -> float:
    """Fleiss' kappa for many raters, generalised to a varying number of raters per task.

    Per task with ``m >= 2`` answers: ``P_t = (sum_k n_tk^2 - m) / (m (m - 1))``, the share of agreeing
    rater pairs; tasks with fewer than two answers are left out. ``P_bar`` is the plain mean of
    ``P_t`` (every task weighs the same, whatever its number of raters); chance agreement ``P_e`` is
    ``sum_k p_k^2`` with ``p_k`` the share of class ``k`` among all answers on those tasks. With a
    constant number of raters this is exactly Fleiss (1971). Returns NaN with no task of two or more
    answers, or when every answer is the same class (``P_e = 1``).
    """
    t, y, n_tasks, k = _codes(task_idx, label)
    if n_classes is not None:
        if n_classes < k:
            raise ValueError(f"a label code is >= n_classes={n_classes}")
        k = n_classes
    counts = np.bincount(t * k + y, minlength=n_tasks * k).reshape(n_tasks, k).astype(np.float64)
    m = counts.sum(axis=1)
    keep = m >= 2
    counts, m = counts[keep], m[keep]
    if len(m) == 0:
        return float("nan")
    p_task = ((counts**2).sum(axis=1) - m) / (m * (m - 1))
    p_bar = p_task.mean()
    p_k = counts.sum(axis=0) / m.sum()
    p_e = float((p_k**2).sum())
    if p_e >= 1.0:
        return float("nan")
    return float((p_bar - p_e) / (1.0 - p_e))


@dataclass(frozen=True)
class PairwiseKappa:
    """Cohen's kappa for every pair of workers with enough shared tasks.

    ``worker_a < worker_b``, ``n_shared`` and ``kappa`` are parallel arrays, one entry per pair.
    ``worker_mean[w]`` is the mean of ``w``'s pair kappas weighted by shared tasks (NaN when ``w`` has
    no qualifying pair or only undefined kappas): a quick "who disagrees with everybody" signal.
    """

    worker_a: IntArray
    worker_b: IntArray
    n_shared: IntArray
    kappa: FloatArray
    worker_mean: FloatArray


def pairwise_cohen_kappa(
    task_idx: ArrayLike,
    worker_idx: ArrayLike,
    label: ArrayLike,
    *,
    min_shared: int = 10,
    n_workers: int | None = None,
) -> PairwiseKappa:
    """Cohen's kappa between each pair of workers who answered at least ``min_shared`` common tasks.

    For a pair, on their shared tasks only: ``p_o`` is the share of equal answers, ``p_e`` the chance
    agreement from each worker's own class distribution on those tasks, ``kappa = (p_o - p_e) /
    (1 - p_e)``; NaN when ``p_e = 1`` (both always gave the same single class). Vectorised with
    sparse products (shared counts ``A A^T``, agreements and per-class marginals likewise), so
    there is no loop over workers or pairs. Each worker may answer a task once: duplicates raise
    ``ValueError``, as does empty input.
    """
    if min_shared < 1:
        raise ValueError("min_shared must be at least 1")
    c = check_codes(task_idx, worker_idx, label, n_workers=n_workers)
    w_n, t_n, k = c.n_workers, c.n_tasks, c.n_classes
    if len(np.unique(c.worker_idx * t_n + c.task_idx)) != len(c.task_idx):
        raise ValueError("a worker answered the same task more than once")
    ones = np.ones(len(c.task_idx))
    answered = sp.csr_matrix((ones, (c.worker_idx, c.task_idx)), shape=(w_n, t_n))
    by_answer = sp.csr_matrix((ones, (c.worker_idx, c.task_idx * k + c.label)), shape=(w_n, t_n * k))
    by_class = sp.csr_matrix((ones, (c.worker_idx * k + c.label, c.task_idx)), shape=(w_n * k, t_n))
    shared = sp.triu(answered @ answered.T, k=1).tocoo()
    keep = shared.data >= min_shared
    a, b, s = shared.row[keep].astype(np.intp), shared.col[keep].astype(np.intp), shared.data[keep]
    if not len(a):  # no pair shares enough tasks (sparse fancy indexing fails on empty indices)
        none = np.empty(0, dtype=np.intp)
        return PairwiseKappa(none, none, none, np.empty(0), np.full(w_n, np.nan))
    agree = np.asarray((by_answer @ by_answer.T).tocsr()[a, b]).ravel()
    margins = (by_class @ answered.T).tocsr()  # [worker * K + class, other worker] on shared tasks
    cls = np.arange(k)
    m_a = np.asarray(margins[(a[:, None] * k + cls).ravel(), np.repeat(b, k)]).reshape(-1, k)
    m_b = np.asarray(margins[(b[:, None] * k + cls).ravel(), np.repeat(a, k)]).reshape(-1, k)
    p_o = agree / s
    p_e = (m_a * m_b).sum(axis=1) / s**2
    with np.errstate(invalid="ignore", divide="ignore"):
        kappa = np.where(p_e < 1.0, (p_o - p_e) / (1.0 - p_e), np.nan)
    ok = ~np.isnan(kappa)
    both = np.concatenate([a[ok], b[ok]])
    weight = np.concatenate([s[ok], s[ok]])
    total = np.bincount(both, weights=weight, minlength=w_n)
    summed = np.bincount(both, weights=weight * np.concatenate([kappa[ok], kappa[ok]]), minlength=w_n)
    with np.errstate(invalid="ignore", divide="ignore"):
        worker_mean = np.where(total > 0, summed / total, np.nan)
    return PairwiseKappa(a, b, s.astype(np.intp), kappa, worker_mean)
