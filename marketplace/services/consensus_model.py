"""The model side of consensus, without the database writes: answers as classes, the workers'
estimates an instant consensus uses, and one call that runs a batch's aggregation method over
``(task, worker, answer)`` rows (``marketplace.services.consensus`` loads the rows and writes the
results)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from crowd import aggregation as agg
from crowd.models import Reliability
from crowd.quality.reliability import PRIOR_STRENGTH, posterior_mean

from ..enums import AggregationMethod, AnswerComparison
from ..models import Project

# Stands in for a second class when only one is known: no canonical JSON is the empty string.
PHANTOM = ""


def canonical(answer: Any) -> str:
    """The class of a categorical answer: its JSON with sorted keys (hashable and stable)."""
    return json.dumps(answer, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def schema_labels(project: Project) -> list[str]:
    enum = (project.answer_schema or {}).get("enum")
    return [canonical(v) for v in enum] if isinstance(enum, list) else []


def is_numeric(project: Project) -> bool:
    return project.comparison_kind == AnswerComparison.NUMERIC


def reliability_for(project_id: int, worker_ids: Iterable[int]) -> dict[int, float]:
    """Posterior-mean gold accuracy on the project per worker (the Beta prior for newcomers)."""
    ids = set(worker_ids)
    found = {
        r.worker_id: posterior_mean(r.gold_correct, r.gold_total)
        for r in Reliability.objects.filter(project_id=project_id, worker_id__in=ids)
    }
    prior = posterior_mean(0, 0)
    return {w: found.get(w, prior) for w in ids}


@dataclass(frozen=True)
class Outcome:
    answer: Any
    confidence: float
    answers_count: int


@dataclass(frozen=True)
class FittedModel:
    """What a Dawid-Skene re-fit learned, kept for instant estimates until the next one: the class
    labels (canonical JSON), the expected number of tasks per class, and per worker id the expected
    counts ``[true][answered]`` over those labels."""

    labels: list[str]
    class_counts: list[float]
    worker_counts: dict[int, list[list[float]]]


def instant_model(
    values: list[str], workers: Sequence[int], accuracy: np.ndarray, model: FittedModel | None
) -> tuple[np.ndarray, np.ndarray]:
    """Confusion rows ``(n_workers, K, K)`` and class priors over ``values`` for one E-step.

    A worker's rows start as the one-coin rows of their gold reliability (``accuracy``). For a
    worker the last re-fit saw, that is the prior, worth ``PRIOR_STRENGTH`` answers per row (the
    Beta prior's strength), and the fit's expected counts are added: the posterior mean, so a worker
    seen a few times is neither taken at a near-0/1 MAP row nor reset to a flat one. With a fit, its
    class shares (+1 each, as in the fit) replace the uniform class prior. (``bench/
    instant_consensus.py`` compares this with the flat prior of ``confusion_from_counts`` and the
    MAP rows.)"""
    k = len(values)
    p = np.clip(accuracy, 1e-3, 1 - 1e-3)[:, None, None]
    confusion = np.where(np.eye(k, dtype=bool)[None], p, (1 - p) / (k - 1))
    priors = np.full(k, 1.0 / k)
    if model is None or not model.labels:
        return confusion, priors
    index = {v: i for i, v in enumerate(values)}
    pos = np.asarray([index[label] for label in model.labels])
    fitted = [i for i, w in enumerate(workers) if int(w) in model.worker_counts]
    if fitted:
        counts = np.zeros((len(fitted), k, k))
        counts[:, pos[:, None], pos[None, :]] = np.asarray(
            [model.worker_counts[int(workers[i])] for i in fitted], dtype=np.float64
        )
        rows = counts + PRIOR_STRENGTH * confusion[fitted]
        confusion[fitted] = rows / rows.sum(axis=2, keepdims=True)
    class_counts = np.ones(k)
    class_counts[pos] += model.class_counts
    return confusion, class_counts / class_counts.sum()


def aggregate(
    *,
    method: str,
    numeric: bool,
    rows: Sequence[tuple[int, int, Any]],
    gold: dict[int, Any],
    reliability: dict[int, float],
    label_hint: Sequence[str],
    full_fit: bool,
    model: FittedModel | None = None,
) -> tuple[dict[int, Outcome], FittedModel]:
    """Consensus per task id from ``(task, worker, answer)`` rows, and the class labels seen (with,
    for a full Dawid-Skene fit, the counts to keep: ``FittedModel``).

    ``gold`` (task id → known answer) clamps those tasks; they train Dawid-Skene's confusion
    matrices. ``full_fit`` False is the instant estimate (``instant_model``: the last fit's
    ``model`` where it knows the worker, else one-coin from ``reliability``).
    """
    tasks = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    workers = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
    if numeric:
        values = np.asarray([float(r[2]) for r in rows])
        enc = agg.encode(tasks, workers, np.zeros(len(rows), dtype=np.intp))
        weights = None
        if method != AggregationMethod.MAJORITY:
            weights = np.asarray([reliability.get(int(w), 0.0) for w in enc.workers])
        pos = {int(t): i for i, t in enumerate(enc.tasks)}
        num = agg.weighted_median(
            enc.task_idx,
            enc.worker_idx,
            values,
            weights,
            gold={pos[t]: float(v) for t, v in gold.items() if t in pos},
        )
        out = {
            int(t): Outcome(float(num.values[i]), float(num.confidence[i]), int(num.n_answers[i]))
            for i, t in enumerate(enc.tasks)
        }
        return out, FittedModel([], [], {})
    labels = [canonical(r[2]) for r in rows]
    gold_labels = {t: canonical(v) for t, v in gold.items()}
    fitted_labels = model.labels if model is not None else []
    values = sorted(set(labels) | set(label_hint) | set(gold_labels.values()) | set(fitted_labels))
    if len(values) < 2:
        values = sorted({*values, PHANTOM})
    enc = agg.encode(tasks, workers, np.asarray(labels, dtype=object), label_values=values)
    k = enc.n_classes
    g = enc.encode_gold(gold_labels) if gold_labels else None
    accuracy = np.asarray([reliability.get(int(w), 0.0) for w in enc.workers])
    codes = (enc.task_idx, enc.worker_idx, enc.label)
    kept = [i for i, v in enumerate(values) if v != PHANTOM]
    fitted = FittedModel([values[i] for i in kept], [], {})
    if method == AggregationMethod.MAJORITY:
        res = agg.majority_vote(*codes, gold=g, n_classes=k)
        label_codes, conf = res.labels, res.confidence
    elif method == AggregationMethod.WEIGHTED:
        res = agg.weighted_vote(*codes, agg.accuracy_to_weights(accuracy, k), gold=g, n_classes=k)
        label_codes, conf = res.labels, res.confidence
    elif full_fit:
        res = agg.dawid_skene(*codes, gold=g, n_classes=k)
        label_codes, conf = res.labels, res.confidence
        counts = agg.confusion_counts(*codes, res.posteriors, n_workers=enc.n_workers)[:, kept][:, :, kept]
        answered = np.bincount(enc.task_idx, minlength=enc.n_tasks) > 0
        if g is not None:
            answered |= g >= 0
        fitted = FittedModel(
            fitted.labels,
            np.round(res.posteriors[answered].sum(axis=0)[kept], 4).tolist(),
            {int(w): np.round(counts[i], 4).tolist() for i, w in enumerate(enc.workers)},
        )
    else:
        confusion, priors = instant_model(values, enc.workers, accuracy, model)
        post = agg.posteriors_from_model(*codes, confusion, priors, n_tasks=enc.n_tasks)
        label_codes, conf = post.argmax(axis=1), post.max(axis=1)
    n_answers = np.bincount(enc.task_idx, minlength=enc.n_tasks)
    out = {}
    for i, t in enumerate(enc.tasks):
        code = int(label_codes[i])
        label = enc.labels[code] if code >= 0 else PHANTOM
        answer = None if label == PHANTOM else json.loads(label)
        out[int(t)] = Outcome(answer, round(float(conf[i]), 6), int(n_answers[i]))
    return out, fitted
