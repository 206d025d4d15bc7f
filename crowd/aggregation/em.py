"""Dawid-Skene truth inference by EM: full confusion matrices, and the one-coin variant.

Both are vectorised the same way: the answers are held once as a sparse ``(n_tasks, n_workers * K)``
matrix ``A`` with a 1 at ``(task, worker * K + answered class)``. The E-step's log-likelihoods are
``A @ log(confusion)`` and the M-step's expected counts ``A.T @ posteriors`` (a CSC view of the same
matrix, which streams through the posteriors instead of gathering them: 5x faster at 1M answers):
two sparse products per iteration, no Python loop over answers, tasks, workers or classes, and
memory linear in the number of answers. The only loop is over EM iterations. Row-wise maxima and
sums over the K classes go through a transposed copy or ``einsum``, because NumPy's ``max``/``sum``
over a short last axis are several times slower; ``einsum`` rather than ``@`` keeps BLAS threads
out, so a fit uses one core and timings compare fairly with single-threaded libraries.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike

from ._encode import Checked, FloatArray, IntArray, check_codes, gold_array
from .majority import vote_shares
from .result import AggregationResult, finish

# log(0) floor: a confusion never observed is a near-veto (as in maximum-likelihood Dawid-Skene)
# but never -inf, so one such answer cannot turn a posterior into NaN.
_TINY = 1e-300
# exp() is the costliest step at scale; float32 computes it 3x faster and its 7 significant digits
# are plenty for posteriors. Below e^-87 float32 turns subnormal (slow), and such a share is zero for
# any purpose here, so it is made exactly zero (measured: no label changes on the seven data sets).
_EXP_CUTOFF = -87.0
# Pseudo-correct answers per true class in every confusion row (the Dirichlet(1 + d*I) prior of the
# M-step). 0.6 was chosen on the seven benchmark sets' truth: on accuracy it cannot be told apart
# from d = 1 (sign tests p = 0.38 without gold, 0.67 with), and it is the largest value on the grid
# that meets the accuracy target against crowd-kit in both settings (docs/BENCHMARKS.md, "How the
# prior was chosen"; bench/prior_selection.py).
DEFAULT_DIAGONAL_PRIOR = 0.6


@dataclass(frozen=True)
class EMPolicy:
    """When EM stops: after at least ``min_iter`` iterations, once the mean log-likelihood per answer
    changed by less than ``tol`` *and* at most ``moving_share`` of the tasks (none, below 1,000 tasks)
    still moved by more than ``posterior_tol`` in total-variation distance, for ``patience``
    consecutive iterations; or at ``max_iter`` (then ``converged`` is False).

    Requiring both tests, repeatedly, after a minimum number of iterations is what keeps a flat or
    near-flat start from stopping at once (there the likelihood barely moves for a few iterations
    while posteriors still drift). ``posterior_tol`` is in probability units: 0.01 means a reported
    confidence would change by less than a point. The share lets a large batch stop while a few
    hundred of its hardest tasks still wobble, long after the likelihood has settled.
    """

    max_iter: int = 500
    min_iter: int = 5
    tol: float = 1e-5
    posterior_tol: float = 1e-2
    patience: int = 2
    moving_share: float = 1e-3

    def __post_init__(self) -> None:
        if not (
            1 <= self.min_iter <= self.max_iter and self.patience >= 1 and self.tol >= 0 <= self.posterior_tol
        ):
            raise ValueError("EMPolicy needs 1 <= min_iter <= max_iter, patience >= 1 and tolerances >= 0")


DEFAULT_POLICY = EMPolicy()

MStep = Callable[[sp.csc_matrix, FloatArray], FloatArray]


def _answer_matrix(c: Checked) -> sp.csr_matrix:
    """Sparse ``(n_tasks, n_workers * K)`` count matrix of answers; duplicates add up."""
    cols = c.worker_idx * c.n_classes + c.label
    data = np.ones(len(cols), dtype=np.float64)
    return sp.csr_matrix((data, (c.task_idx, cols)), shape=(c.n_tasks, c.n_workers * c.n_classes))


def _normalise_log(log_lik: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Row-wise softmax of log-likelihoods -> (posteriors, per-row log normaliser)."""
    top = np.ascontiguousarray(log_lik.T).max(axis=0)
    shifted = (log_lik - top[:, None]).astype(np.float32)
    shifted[shifted < _EXP_CUTOFF] = -np.inf
    post = np.exp(shifted).astype(np.float64)
    norm = np.einsum("tk->t", post)
    post /= norm[:, None]
    return post, top + np.log(norm.astype(np.float32))


def _clamp(post: FloatArray, gold: IntArray) -> FloatArray:
    is_gold = gold >= 0
    if is_gold.any():
        post[is_gold] = 0.0
        post[is_gold, gold[is_gold]] = 1.0
    return post


def _initial_posteriors(c: Checked, gold: IntArray) -> FloatArray:
    """Majority-vote shares (exact ties stay split, so EM sees the doubt), gold clamped."""
    votes, total = vote_shares(c.task_idx, c.label, np.ones(len(c.label)), c.n_tasks, c.n_classes)
    post = np.divide(
        votes, total[:, None], out=np.full_like(votes, 1.0 / c.n_classes), where=total[:, None] > 0
    )
    return _clamp(post, gold)


def _checked_init(init_posteriors: ArrayLike | None, c: Checked, gold: IntArray) -> FloatArray:
    if init_posteriors is None:
        return _initial_posteriors(c, gold)
    init = np.array(init_posteriors, dtype=np.float64)
    if init.shape != (c.n_tasks, c.n_classes) or not np.all(np.isfinite(init)) or init.min() < 0:
        raise ValueError(
            f"init_posteriors must be finite, non-negative, of shape ({c.n_tasks}, {c.n_classes})"
        )
    sums = init.sum(axis=1, keepdims=True)
    init = np.divide(init, sums, out=np.full_like(init, 1.0 / c.n_classes), where=sums > 0)
    return _clamp(init, gold)


def _class_priors(post: FloatArray, counted: FloatArray, group: IntArray | None) -> FloatArray:
    """``(n_groups, K)`` class shares among counted tasks (``counted`` is 1.0 for a task with answers
    or gold), +1 per class (Laplace), so the prior alone never rules a class out."""
    k = post.shape[1]
    if group is None:
        sums = np.einsum("t,tk->k", counted, post)[None, :] + 1.0
    else:
        n_groups = int(group.max()) + 1
        idx = (group[:, None] * k + np.arange(k)).ravel()
        weights = (post * counted[:, None]).ravel()
        sums = np.bincount(idx, weights=weights, minlength=n_groups * k).reshape(n_groups, k) + 1.0
    return sums / sums.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class _Fit:
    post: FloatArray
    priors: FloatArray
    log_theta: FloatArray
    n_iter: int
    converged: bool
    log_likelihood: float


def _em(
    c: Checked, gold: IntArray, m_step: MStep, post: FloatArray, policy: EMPolicy, group: IntArray | None
) -> _Fit:
    """The EM loop both models share. ``m_step(A.T, posteriors)`` returns ``log_theta`` of shape
    ``(n_workers * K, K)`` indexed ``[worker * K + answered class, true class]``."""
    a = _answer_matrix(c)
    a_t = a.T  # CSC view, no copy
    n_answers = np.bincount(c.task_idx, minlength=c.n_tasks)
    is_gold = gold >= 0
    counted = ((n_answers > 0) | is_gold).astype(np.float64)
    free = ((n_answers > 0) & ~is_gold).astype(np.float64)
    allowed_moving = int(policy.moving_share * c.n_tasks)
    prev_ll, ll, streak, converged, it = -math.inf, -math.inf, 0, False, 0
    log_theta, priors = np.empty(0), np.empty(0)
    for it in range(1, policy.max_iter + 1):
        log_theta = m_step(a_t, post)
        priors = _class_priors(post, counted, group)
        log_lik = a @ log_theta
        log_lik += np.log(priors[0]) if group is None else np.log(priors)[group]
        new_post, log_norm = _normalise_log(log_lik)
        _clamp(new_post, gold)
        # Observed-data log-likelihood per answer: free tasks sum over classes, gold tasks use theirs.
        ll = float(np.einsum("t,t->", free, log_norm))
        if is_gold.any():
            ll += float(log_lik[is_gold, gold[is_gold]].sum())
        ll /= len(c.label)
        moving = int(np.count_nonzero(np.einsum("tk->t", np.abs(new_post - post)) > 2 * policy.posterior_tol))
        post = new_post
        if it >= policy.min_iter and abs(ll - prev_ll) < policy.tol and moving <= allowed_moving:
            streak += 1
            if streak >= policy.patience:
                converged = True
                break
        else:
            streak = 0
        prev_ll = ll
    return _Fit(post, priors, log_theta, it, converged, ll)


def _check_pseudo_count(name: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite non-negative pseudo-count")


def _prior_group(prior_group: ArrayLike | None, n_tasks: int) -> IntArray | None:
    if prior_group is None:
        return None
    group = np.asarray(prior_group)
    if group.shape != (n_tasks,) or not np.issubdtype(group.dtype, np.integer) or group.min() < 0:
        raise ValueError(f"prior_group must be non-negative integers of shape ({n_tasks},)")
    return group.astype(np.intp)


def dawid_skene(
    task_idx: ArrayLike,
    worker_idx: ArrayLike,
    label: ArrayLike,
    *,
    gold: Mapping[int, int] | ArrayLike | None = None,
    prior_confusion: ArrayLike | None = None,
    smoothing: float = 0.0,
    diagonal_prior: float = DEFAULT_DIAGONAL_PRIOR,
    n_tasks: int | None = None,
    n_workers: int | None = None,
    n_classes: int | None = None,
    init_posteriors: ArrayLike | None = None,
    policy: EMPolicy = DEFAULT_POLICY,
    prior_group: ArrayLike | None = None,
) -> AggregationResult:
    """Dawid-Skene (1979): each worker has a full K x K confusion matrix, fitted by EM.

    Assumptions: a task has exactly one true class; given it, answers are independent across
    workers, and each worker answers from their own row ``P(answer | true class)``, the same on every
    task. A worker needs several answers per class to pin down K*(K-1) parameters; on very sparse
    data ``one_coin_dawid_skene`` is steadier.

    - Start: majority-vote shares (exact vote ties stay split) with gold clamped, or
      ``init_posteriors`` (``(n_tasks, K)``) to warm-start from an earlier fit.
    - M-step (MAP): expected counts ``[worker, true, answered]`` + ``prior_confusion`` (same shape:
      pseudo-counts from history, e.g. gold records from earlier batches) + ``smoothing`` in every
      cell (Laplace) + ``diagonal_prior`` on the diagonal, normalised per true class. The default,
      ``diagonal_prior=0.6, smoothing=0``, is the MAP estimate under a Dirichlet(1 + 0.6*I) prior:
      0.6 pseudo-correct answers per class, which breaks the label-swap symmetry and keeps a worker seen
      a few times from looking perfectly adversarial; with ``smoothing=0`` a confusion never observed
      stays a near-veto, as in maximum-likelihood DS (docs/BENCHMARKS.md has the measurements behind
      these defaults). Class priors: class shares over answered or gold tasks, +1 per class, one
      prior per ``prior_group`` if given (the multi-label model uses one group per label).
    - E-step: posteriors from priors and confusion rows in log space; gold tasks are clamped to their
      class in every iteration, so they train the confusion matrices and never move.
    - Convergence: ``EMPolicy`` (both likelihood and posteriors settled, twice, after 5 iterations).
    - Labels: posterior argmax; an exact tie goes to the lowest class code. A task with neither
      answers nor gold gets label -1 and confidence 0.

    ``worker_quality`` is the prior-weighted diagonal: the chance the worker is right on a random
    task. Raises ``ValueError`` on empty or malformed input.
    """
    _check_pseudo_count("smoothing", smoothing)
    _check_pseudo_count("diagonal_prior", diagonal_prior)
    c = check_codes(task_idx, worker_idx, label, n_tasks=n_tasks, n_workers=n_workers, n_classes=n_classes)
    k = c.n_classes
    g = gold_array(gold, c.n_tasks, k)
    pseudo = np.full((k, k), smoothing) + diagonal_prior * np.eye(k)  # [answered, true]; symmetric
    extra = None
    if prior_confusion is not None:
        extra = np.asarray(prior_confusion, dtype=np.float64)
        if extra.shape != (c.n_workers, k, k) or not np.all(np.isfinite(extra)) or extra.min() < 0:
            raise ValueError(
                f"prior_confusion must be non-negative counts of shape ({c.n_workers}, {k}, {k})"
            )
        extra = extra.transpose(0, 2, 1)  # to the internal [worker, answered, true] layout

    def m_step(a_t: sp.csc_matrix, post: FloatArray) -> FloatArray:
        counts = (a_t @ post).reshape(c.n_workers, k, k) + pseudo
        if extra is not None:
            counts += extra
        theta = counts / np.maximum(counts.sum(axis=1, keepdims=True), _TINY)
        return np.log(np.maximum(theta, _TINY)).reshape(c.n_workers * k, k)

    group = _prior_group(prior_group, c.n_tasks)
    fit = _em(c, g, m_step, _checked_init(init_posteriors, c, g), policy, group)
    confusion = np.exp(fit.log_theta).reshape(c.n_workers, k, k).transpose(0, 2, 1)
    n_answers = np.bincount(c.task_idx, minlength=c.n_tasks)
    labels, conf, post = finish(fit.post, n_answers > 0, g)
    priors = fit.priors.mean(axis=0)
    diag = np.einsum("wkk->wk", confusion) @ priors
    quality = np.where(np.bincount(c.worker_idx, minlength=c.n_workers) > 0, diag, np.nan)
    return AggregationResult(
        labels=labels,
        confidence=conf,
        posteriors=post,
        worker_quality=quality,
        n_answers=n_answers,
        method="dawid_skene",
        confusion=confusion,
        class_priors=priors,
        n_iter=fit.n_iter,
        converged=fit.converged,
        log_likelihood=fit.log_likelihood,
    )


def one_coin_dawid_skene(
    task_idx: ArrayLike,
    worker_idx: ArrayLike,
    label: ArrayLike,
    *,
    gold: Mapping[int, int] | ArrayLike | None = None,
    prior_correct: ArrayLike | None = None,
    smoothing: float = 1.0,
    n_tasks: int | None = None,
    n_workers: int | None = None,
    n_classes: int | None = None,
    init_posteriors: ArrayLike | None = None,
    policy: EMPolicy = DEFAULT_POLICY,
) -> AggregationResult:
    """One-coin Dawid-Skene: each worker has one accuracy ``p_w``; their errors spread evenly.

    ``P(answer = true class) = p_w`` and ``P(answer = j) = (1 - p_w) / (K - 1)`` for each wrong ``j``.
    One parameter per worker keeps it stable on sparse data where full confusion matrices overfit;
    it cannot model a worker who confuses two particular classes, nor class-dependent skill, so on
    skewed data with many one-class answerers it can do worse than a majority vote.

    M-step: ``p_w = (expected correct + smoothing / K + prior_correct[w, 0]) / (answers + smoothing +
    prior_correct[w].sum())``: ``smoothing`` pseudo-answers at chance level, plus optional historical
    (correct, wrong) counts ``prior_correct`` of shape ``(n_workers, 2)``, e.g. from gold. Start,
    gold clamping, class priors, tie rule and convergence are those of ``dawid_skene``.
    ``worker_quality`` is ``p_w``.
    """
    _check_pseudo_count("smoothing", smoothing)
    c = check_codes(task_idx, worker_idx, label, n_tasks=n_tasks, n_workers=n_workers, n_classes=n_classes)
    k = c.n_classes
    g = gold_array(gold, c.n_tasks, k)
    prior = np.zeros((c.n_workers, 2))
    if prior_correct is not None:
        prior = np.asarray(prior_correct, dtype=np.float64)
        if prior.shape != (c.n_workers, 2) or not np.all(np.isfinite(prior)) or prior.min() < 0:
            raise ValueError(f"prior_correct must be non-negative counts of shape ({c.n_workers}, 2)")
    n_per_worker = np.bincount(c.worker_idx, minlength=c.n_workers).astype(np.float64)
    eye = np.eye(k, dtype=bool)[None]
    accuracy = np.full(c.n_workers, np.nan)

    def m_step(a_t: sp.csc_matrix, post: FloatArray) -> FloatArray:
        correct = np.einsum("wkk->w", (a_t @ post).reshape(c.n_workers, k, k))
        denominator = np.maximum(n_per_worker + smoothing + prior.sum(axis=1), _TINY)
        p = np.clip((correct + smoothing / k + prior[:, 0]) / denominator, 1e-9, 1.0 - 1e-9)
        accuracy[:] = p
        wrong = (1.0 - p) / max(k - 1, 1)
        theta = np.where(eye, p[:, None, None], wrong[:, None, None])
        return np.log(theta).reshape(c.n_workers * k, k)

    fit = _em(c, g, m_step, _checked_init(init_posteriors, c, g), policy, None)
    n_answers = np.bincount(c.task_idx, minlength=c.n_tasks)
    labels, conf, post = finish(fit.post, n_answers > 0, g)
    quality = np.where(n_per_worker > 0, accuracy, np.nan)
    return AggregationResult(
        labels=labels,
        confidence=conf,
        posteriors=post,
        worker_quality=quality,
        n_answers=n_answers,
        method="one_coin_dawid_skene",
        class_priors=fit.priors[0],
        n_iter=fit.n_iter,
        converged=fit.converged,
        log_likelihood=fit.log_likelihood,
    )


def posteriors_from_model(
    task_idx: ArrayLike,
    worker_idx: ArrayLike,
    label: ArrayLike,
    confusion: ArrayLike,
    class_priors: ArrayLike,
    *,
    n_tasks: int | None = None,
) -> FloatArray:
    """Task posteriors from a fitted model's confusion matrices and priors, without re-fitting.

    This is the instant consensus for a task that just reached its overlap: one E-step with the
    current worker estimates (``confusion`` ``(n_workers, K, K)`` as ``[worker, true, answered]``).
    A task without answers gets the priors. No gold handling: clamp gold yourself.
    """
    conf = np.asarray(confusion, dtype=np.float64)
    if conf.ndim != 3 or conf.shape[1] != conf.shape[2]:
        raise ValueError("confusion must have shape (n_workers, K, K)")
    n_workers, k, _ = conf.shape
    c = check_codes(task_idx, worker_idx, label, n_tasks=n_tasks, n_workers=n_workers, n_classes=k)
    log_theta = np.log(np.maximum(conf, _TINY)).transpose(0, 2, 1).reshape(n_workers * k, k)
    log_prior = np.log(np.maximum(np.asarray(class_priors, dtype=np.float64), _TINY))
    log_lik = _answer_matrix(c) @ log_theta + log_prior[None, :]
    return _normalise_log(log_lik)[0]


def confusion_counts(
    task_idx: ArrayLike,
    worker_idx: ArrayLike,
    label: ArrayLike,
    posteriors: ArrayLike,
    *,
    n_workers: int | None = None,
) -> FloatArray:
    """Expected answer counts ``(n_workers, K, K)`` as ``[worker, true, answered]`` under ``posteriors``
    (``(n_tasks, K)``, e.g. a fit's, gold tasks clamped): what an M-step sees. A fit's counts can be
    kept and turned into confusion rows later, under a prior of the caller's choice (a Dirichlet one:
    ``confusion_from_counts``), so answers that arrive between two fits are weighed by what the last
    fit learned, without re-fitting."""
    post = np.asarray(posteriors, dtype=np.float64)
    if post.ndim != 2:
        raise ValueError("posteriors must have shape (n_tasks, K)")
    n_tasks, k = post.shape
    c = check_codes(task_idx, worker_idx, label, n_tasks=n_tasks, n_workers=n_workers, n_classes=k)
    return np.asarray(_answer_matrix(c).T @ post).reshape(c.n_workers, k, k).transpose(0, 2, 1)


def confusion_from_counts(
    counts: ArrayLike, *, smoothing: float = 1.0, diagonal_prior: float = DEFAULT_DIAGONAL_PRIOR
) -> FloatArray:
    """Confusion rows ``[worker, true, answered]`` from counts of the same shape: each row's posterior
    *mean* under a Dirichlet(``smoothing`` + ``diagonal_prior`` * I) prior. The defaults are the
    posterior mean under the prior whose MAP ``dawid_skene`` fits: a worker seen a few times keeps
    rows well inside (0, 1), so a decision taken from them (stop buying answers) is not overconfident
    the way MAP rows near 0/1 are."""
    _check_pseudo_count("smoothing", smoothing)
    _check_pseudo_count("diagonal_prior", diagonal_prior)
    n = np.asarray(counts, dtype=np.float64)
    if n.ndim != 3 or n.shape[1] != n.shape[2] or not np.all(np.isfinite(n)) or (n.size and n.min() < 0):
        raise ValueError("counts must be finite non-negative, of shape (n_workers, K, K)")
    k = n.shape[1]
    rows = n + smoothing + diagonal_prior * np.eye(k)[None]
    sums = rows.sum(axis=2, keepdims=True)
    return np.divide(rows, sums, out=np.full_like(rows, 1.0 / max(k, 1)), where=sums > 0)
