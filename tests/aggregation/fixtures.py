"""Small synthetic crowds with known truth, generated from a fixed seed (no files, no network)."""

from __future__ import annotations

import numpy as np


def simulate(
    accuracy: list[float],
    *,
    n_tasks: int = 300,
    n_classes: int = 2,
    per_task: int | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One-coin workers with the given accuracies (errors uniform over the other classes).

    Every worker answers every task unless ``per_task`` is set, in which case each task gets that
    many distinct workers at random. Returns (task_idx, worker_idx, label, truth).
    """
    rng = np.random.default_rng(seed)
    acc = np.asarray(accuracy)
    truth = rng.integers(n_classes, size=n_tasks)
    if per_task is None:
        task = np.repeat(np.arange(n_tasks), len(acc))
        worker = np.tile(np.arange(len(acc)), n_tasks)
    else:
        task = np.repeat(np.arange(n_tasks), per_task)
        worker = np.argsort(rng.random((n_tasks, len(acc))), axis=1)[:, :per_task].ravel()
    right = rng.random(len(task)) < acc[worker]
    wrong = (truth[task] + rng.integers(1, n_classes, size=len(task))) % n_classes
    label = np.where(right, truth[task], wrong)
    return task, worker, label, truth
