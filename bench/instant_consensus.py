#!/usr/bin/env python
"""How good is the instant consensus between two re-fits? Replayed on the real data sets.

The product computes a task's consensus the moment it reaches its overlap, from the answers and
the current worker estimates (``marketplace.services.consensus_model.instant_model``), and only the
next periodic re-fit replaces it. This replays that: per data set and seed, 10% of the tasks are
gold (their truth known, as control tasks), half of the remaining tasks were answered before the
last re-fit and the other half arrive after it. For the late half it compares, against the truth:

- ``one-coin gold``: the one-coin model with each worker's gold reliability (Beta(4, 1) posterior
  mean of their control answers) as accuracy, uniform class priors: the instant estimate before
  the product kept the re-fit's confusion counts;
- ``fitted, gold prior``: what the product does now: for a worker the last re-fit saw, their
  one-coin gold rows worth 5 answers plus the fit's expected counts, normalised (a posterior mean);
  one-coin gold for the others; the fit's class shares as priors;
- ``fitted, flat prior``: the same with a Dirichlet(1 + I) prior instead of the gold rows
  (``confusion_from_counts``), and ``fitted, MAP``: the fit's own MAP rows: the alternatives;
- ``full re-fit``: Dawid-Skene on every answer, gold clamped: what the next re-fit will say.

Usage (under a minute)::

    .venv/bin/python bench/instant_consensus.py [DATASETS_DIR] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from aggregation import DEFAULT_DATASETS, ROOT, load_datasets, table

from crowd.aggregation import (
    confusion_counts,
    confusion_from_counts,
    dawid_skene,
    encode,
    posteriors_from_model,
)

GOLD_SHARE = 0.1
PRODUCT = "fitted, gold prior"
VARIANTS = ("one-coin gold", PRODUCT, "fitted, flat prior", "fitted, MAP", "full re-fit")


def instant_model():
    """The product's function, with Django configured the way ``manage.py`` does by default."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketplace.settings.local")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from crowd.quality.reliability import posterior_mean
    from marketplace.services.consensus_model import FittedModel, instant_model

    return FittedModel, instant_model, posterior_mean


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("datasets", nargs="?", type=Path, default=DEFAULT_DATASETS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    if not args.datasets.is_dir():
        raise SystemExit(f"no data sets at {args.datasets}")
    FittedModel, build, posterior_mean = instant_model()
    rows = []
    for ds in load_datasets(args.datasets):
        enc = encode(
            ds.answers["task"].to_numpy(), ds.answers["worker"].to_numpy(), ds.answers["label"].to_numpy()
        )
        truth = enc.encode_gold(ds.truth.to_dict())  # class code per task, -1 where unknown
        scores = {name: [] for name in VARIANTS}
        late_share = []
        for seed in args.seeds:
            rng = np.random.default_rng(seed)
            with_truth = np.flatnonzero(truth >= 0)
            gold_tasks = rng.choice(with_truth, round(GOLD_SHARE * len(with_truth)), replace=False)
            gold = np.full(enc.n_tasks, -1)
            gold[gold_tasks] = truth[gold_tasks]
            regular = np.setdiff1d(np.arange(enc.n_tasks), gold_tasks)
            late = np.zeros(enc.n_tasks, dtype=bool)
            late[rng.permutation(regular)[: len(regular) // 2]] = True
            early = ~late[enc.task_idx]
            codes = (enc.task_idx, enc.worker_idx, enc.label)
            sizes = {"n_tasks": enc.n_tasks, "n_workers": enc.n_workers, "n_classes": enc.n_classes}

            # each worker's gold record: their answers on control tasks
            on_gold = gold[enc.task_idx] >= 0
            right = np.bincount(
                enc.worker_idx[on_gold],
                weights=(enc.label == gold[enc.task_idx])[on_gold],
                minlength=enc.n_workers,
            )
            seen = np.bincount(enc.worker_idx[on_gold], minlength=enc.n_workers)
            reliability = np.asarray(
                [posterior_mean(int(c), int(n)) for c, n in zip(right, seen, strict=True)]
            )

            # the last re-fit: every answer given before it (gold included), gold clamped
            fit = dawid_skene(*(c[early] for c in codes), gold=gold, **sizes)
            counts = confusion_counts(*(c[early] for c in codes), fit.posteriors, n_workers=enc.n_workers)
            answered = (np.bincount(enc.task_idx[early], minlength=enc.n_tasks) > 0) | (gold >= 0)
            values = [str(v) for v in range(enc.n_classes)]
            workers_seen = np.bincount(enc.worker_idx[early], minlength=enc.n_workers) > 0
            model = FittedModel(
                values,
                fit.posteriors[answered].sum(axis=0).tolist(),
                {w: counts[w].tolist() for w in np.flatnonzero(workers_seen)},
            )
            workers = np.arange(enc.n_workers)
            new_rows, new_priors = build(values, workers, reliability, model)
            old_rows, old_priors = build(values, workers, reliability, None)
            flat, fitted_map = old_rows.copy(), old_rows.copy()
            flat[workers_seen] = confusion_from_counts(counts[workers_seen])
            fitted_map[workers_seen] = confusion_from_counts(counts[workers_seen], smoothing=0.0)
            sel = late[enc.task_idx]
            late_codes = tuple(c[sel] for c in codes)
            target = late & (truth >= 0)
            for name, (conf, priors) in {
                "one-coin gold": (old_rows, old_priors),
                "fitted, gold prior": (new_rows, new_priors),
                "fitted, flat prior": (flat, new_priors),
                "fitted, MAP": (fitted_map, new_priors),
            }.items():
                post = posteriors_from_model(*late_codes, conf, priors, n_tasks=enc.n_tasks)
                scores[name].append(float((post.argmax(axis=1) == truth)[target].mean()))
            full = dawid_skene(*codes, gold=gold, **sizes)
            scores["full re-fit"].append(float((full.labels == truth)[target].mean()))
            late_share.append(int(target.sum()))
        rows.append(
            [ds.name, str(int(np.mean(late_share)))]
            + [f"{np.mean(v):.4f}" for v in scores.values()]
            + [f"{100 * (np.mean(scores[PRODUCT]) - np.mean(scores['one-coin gold'])):+.2f}"]
        )
        print(f"  {ds.name}: {scores}", file=sys.stderr, flush=True)
    print(f"# Instant consensus of tasks answered after the last re-fit (mean over seeds {args.seeds})\n")
    headers = ["dataset", "late tasks", *VARIANTS, "product - one-coin pts"]
    print(table(headers, rows))


if __name__ == "__main__":
    main()
