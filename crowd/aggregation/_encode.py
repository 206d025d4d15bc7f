"""Turning ids into integer codes, and checking coded input before any method runs.

Every method in this package works on parallel integer arrays (one row per answer): ``task_idx`` in
``[0, n_tasks)``, ``worker_idx`` in ``[0, n_workers)`` and ``label`` in ``[0, n_classes)``. Coding
happens once, here, so the methods never see strings and can index arrays directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

IntArray = NDArray[np.intp]
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Encoded:
    """Coded answers plus the lookup tables to turn codes back into the caller's ids.

    ``tasks[task_idx[i]]`` is the original task id of answer ``i``; likewise for workers and labels.
    The tables are sorted (``np.unique`` order), so coding is deterministic for the same input.
    """

    task_idx: IntArray
    worker_idx: IntArray
    label: IntArray
    tasks: NDArray[Any]
    workers: NDArray[Any]
    labels: NDArray[Any]

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    @property
    def n_workers(self) -> int:
        return len(self.workers)

    @property
    def n_classes(self) -> int:
        return len(self.labels)

    def encode_gold(self, gold: Mapping[Any, Any]) -> IntArray:
        """Gold answers keyed by original task id -> array of class codes per task, -1 where unknown.

        Gold for a task nobody answered is ignored (the methods only report answered tasks); a gold
        label that no worker ever gave is an error, because it has no code in ``labels``.
        """
        out = np.full(self.n_tasks, -1, dtype=np.intp)
        if not gold:
            return out
        keys = np.asarray(list(gold.keys()))
        values = np.asarray(list(gold.values()))
        t_pos = np.searchsorted(self.tasks, keys)
        t_pos = np.clip(t_pos, 0, self.n_tasks - 1)
        known = self.tasks[t_pos] == keys
        l_pos = np.clip(np.searchsorted(self.labels, values), 0, self.n_classes - 1)
        if not np.all(self.labels[l_pos[known]] == values[known]):
            raise ValueError(
                "gold contains a label that no worker gave; pass label_values=... to encode() to add it"
            )
        out[t_pos[known]] = l_pos[known]
        return out


def encode(
    tasks: ArrayLike,
    workers: ArrayLike,
    labels: ArrayLike,
    *,
    label_values: Sequence[Any] | None = None,
) -> Encoded:
    """Code parallel arrays of task ids, worker ids and answers as dense integers.

    ``label_values`` fixes the class list (and so the codes) when some classes may be absent from the
    answers, e.g. a gold-only class or a stable class order across batches; it must be sorted-unique
    compatible with ``np.unique`` and contain every answer. Raises ``ValueError`` on empty input or
    on arrays of different lengths.
    """
    t = np.asarray(tasks)
    w = np.asarray(workers)
    y = np.asarray(labels)
    if not (t.shape == w.shape == y.shape) or t.ndim != 1:
        raise ValueError(
            f"tasks, workers and labels must be 1-d and of one length, got {t.shape}, {w.shape}, {y.shape}"
        )
    if t.size == 0:
        raise ValueError("no answers to aggregate: the input is empty")
    task_ids, task_idx = np.unique(t, return_inverse=True)
    worker_ids, worker_idx = np.unique(w, return_inverse=True)
    if label_values is None:
        label_ids, label_idx = np.unique(y, return_inverse=True)
    else:
        label_ids = np.unique(np.asarray(label_values))
        label_idx = np.searchsorted(label_ids, y)
        clipped = np.clip(label_idx, 0, len(label_ids) - 1)
        if not np.all(label_ids[clipped] == y):
            raise ValueError("an answer is not among label_values")
    return Encoded(
        task_idx=task_idx.astype(np.intp),
        worker_idx=worker_idx.astype(np.intp),
        label=label_idx.astype(np.intp),
        tasks=task_ids,
        workers=worker_ids,
        labels=label_ids,
    )


def encode_multilabel(label_sets: Iterable[Iterable[Any]]) -> tuple[NDArray[np.int8], NDArray[Any]]:
    """Answers given as sets of labels -> (0/1 indicator matrix of shape (n_answers, n_labels), label ids).

    An empty set is a valid answer ("none of these"): it says 0 for every label.
    """
    sets = [list(s) for s in label_sets]
    if not sets:
        raise ValueError("no answers to aggregate: the input is empty")
    flat = [x for s in sets for x in s]
    label_ids = np.unique(np.asarray(flat)) if flat else np.asarray([])
    rows = np.repeat(np.arange(len(sets)), [len(s) for s in sets])
    cols = np.searchsorted(label_ids, np.asarray(flat)) if flat else np.zeros(0, dtype=np.intp)
    out = np.zeros((len(sets), len(label_ids)), dtype=np.int8)
    out[rows, cols] = 1
    return out, label_ids


@dataclass(frozen=True)
class Checked:
    """Validated coded input with its sizes (what ``check_codes`` returns)."""

    task_idx: IntArray
    worker_idx: IntArray
    label: IntArray
    n_tasks: int
    n_workers: int
    n_classes: int


def check_codes(
    task_idx: ArrayLike,
    worker_idx: ArrayLike,
    label: ArrayLike,
    *,
    n_tasks: int | None = None,
    n_workers: int | None = None,
    n_classes: int | None = None,
) -> Checked:
    """Validate coded answers and infer missing sizes (max code + 1).

    Raises ``ValueError`` for empty input, arrays of different lengths, non-integer or negative codes,
    and codes beyond an explicit size. Sizes may exceed the codes seen (a task with no answers yet).
    """
    t = np.asarray(task_idx)
    w = np.asarray(worker_idx)
    y = np.asarray(label)
    if not (t.shape == w.shape == y.shape) or t.ndim != 1:
        raise ValueError(
            "task_idx, worker_idx and label must be 1-d and of one length, "
            f"got {t.shape}, {w.shape}, {y.shape}"
        )
    if t.size == 0:
        raise ValueError("no answers to aggregate: the input is empty")
    for name, arr in (("task_idx", t), ("worker_idx", w), ("label", y)):
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{name} must hold integer codes (use encode() for ids), got dtype {arr.dtype}")
        if arr.min() < 0:
            raise ValueError(f"{name} has a negative code")
    sizes = []
    for name, arr, given in (
        ("n_tasks", t, n_tasks),
        ("n_workers", w, n_workers),
        ("n_classes", y, n_classes),
    ):
        top = int(arr.max()) + 1
        if given is None:
            given = top
        elif top > given:
            raise ValueError(f"a code is >= {name}={given}")
        sizes.append(int(given))
    return Checked(t.astype(np.intp), w.astype(np.intp), y.astype(np.intp), *sizes)


def gold_array(gold: Mapping[int, int] | ArrayLike | None, n_tasks: int, n_classes: int) -> IntArray:
    """Gold given as {task_idx: label} or as a per-task array with -1 for unknown -> per-task array."""
    out = np.full(n_tasks, -1, dtype=np.intp)
    if gold is None:
        return out
    if isinstance(gold, Mapping):
        if gold:
            keys = np.fromiter(gold.keys(), dtype=np.intp, count=len(gold))
            vals = np.fromiter(gold.values(), dtype=np.intp, count=len(gold))
            if keys.min() < 0 or keys.max() >= n_tasks:
                raise ValueError("gold names a task code outside [0, n_tasks)")
            out[keys] = vals
    else:
        arr = np.asarray(gold)
        if arr.shape != (n_tasks,) or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"gold as an array must be integer of shape ({n_tasks},), -1 for unknown")
        out[:] = arr
    if out.max() >= n_classes or out.min() < -1:
        raise ValueError(f"gold label outside [0, n_classes={n_classes})")
    return out


def worker_weights(weights: ArrayLike | None, n_workers: int) -> FloatArray:
    """Per-worker non-negative weights (default all 1.0), validated."""
    if weights is None:
        return np.ones(n_workers)
    out = np.asarray(weights, dtype=np.float64)
    if out.shape != (n_workers,):
        raise ValueError(f"weights must have shape ({n_workers},), got {out.shape}")
    if not np.all(np.isfinite(out)) or out.min() < 0:
        raise ValueError("weights must be finite and non-negative")
    return out
