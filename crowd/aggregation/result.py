"""The result every categorical method returns, and how labels are read off posteriors."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._encode import FloatArray, IntArray


@dataclass(frozen=True)
class AggregationResult:
    """Per-task consensus and per-worker quality from one aggregation run.

    - ``labels[t]``: consensus class code of task ``t``; -1 for a task with neither answers nor gold.
    - ``confidence[t]``: the posterior probability (or vote share, for the voting methods) of that
      label; 0.0 where the label is -1; 1.0 on gold tasks.
    - ``posteriors``: ``(n_tasks, n_classes)``, rows sum to 1 (all zeros where the label is -1).
    - ``worker_quality[w]``: the method's estimate of the probability that worker ``w`` answers a
      task correctly; NaN for a worker with no answers.
    - ``n_answers[t]``: answers the task received.
    - ``confusion``: Dawid-Skene only, ``(n_workers, n_classes, n_classes)`` indexed
      ``[worker, true class, answered class]``; each ``[w, k]`` row sums to 1.
    - ``class_priors``: the estimated share of each true class (Dawid-Skene only).
    - ``n_iter``/``converged``/``log_likelihood``: EM bookkeeping (voting: 0, True, NaN).
    """

    labels: IntArray
    confidence: FloatArray
    posteriors: FloatArray
    worker_quality: FloatArray
    n_answers: IntArray
    method: str
    confusion: FloatArray | None = None
    class_priors: FloatArray | None = None
    n_iter: int = 0
    converged: bool = True
    log_likelihood: float = math.nan


def finish(
    posteriors: FloatArray, answered: np.ndarray, gold: IntArray
) -> tuple[IntArray, FloatArray, FloatArray]:
    """Pick labels and confidences; blank out tasks without answers or gold (label -1).

    Tie rule shared by every categorical method: an exact tie goes to the lowest class code
    (``np.argmax`` order), so the same input always gives the same labels.
    """
    has_label = answered | (gold >= 0)
    post = np.where(has_label[:, None], posteriors, 0.0)
    labels = post.argmax(axis=1).astype(np.intp)
    labels[~has_label] = -1
    conf = np.where(has_label, post[np.arange(len(labels)), np.maximum(labels, 0)], 0.0)
    return labels, conf, post
