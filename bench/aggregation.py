#!/usr/bin/env python
"""Truth-inference benchmark: ``crowd.aggregation`` against crowd-kit on the same data, in one run.

Prints four tables (docs/BENCHMARKS.md records a run):

1. **Real data sets** (every folder of DATASETS_DIR with ``labels.csv`` worker,task,label and
   ``truth.csv`` task,truth): accuracy on the tasks with truth, fit seconds and peak traced memory
   for each method. Both libraries start from the same pandas DataFrame of string ids, and our
   timing includes coding the ids (``encode``) and mapping labels back, so the comparison is
   end to end. Seconds are the best of ``--repeats`` wall-clock runs (a fit slower than 5 s runs
   once, on either side); peak memory is ``tracemalloc``'s peak over one more run, i.e. the
   allocations the fit itself makes (NumPy and pandas report theirs to tracemalloc).
2. **10% gold**: a fixed random 10% of the truth (seed 0, and seeds 0-9 for a mean: one reveal
   of 10 % moves a small set's accuracy by whole tasks) is given to both
   Dawid-Skene implementations as known answers (ours clamps them; crowd-kit's ``fit(true_labels=)``
   corrects them every iteration); accuracy is on the other 90%.
3. **Scale**: a generated set of 1,000,000 labels (200,000 tasks x 5 answers, 2,000 workers,
   4 classes, 70% honest workers of accuracy 0.6-0.95, 15% biased towards one class, 15%
   spammers), fitted by each Dawid-Skene in its own fresh process: wall and CPU seconds, peak RSS
   growth during the fit (``ru_maxrss`` after minus RSS before) and tracemalloc's peak.
4. **Dynamic overlap replay** on the real sets: see ``replay_dynamic_overlap``.

Usage (from the repository root; crowd-kit, pandas and krippendorff come from requirements-dev.txt)::

    .venv/bin/python bench/aggregation.py                      # ../shared/datasets
    .venv/bin/python bench/aggregation.py /path/to/datasets --skip-slow --no-scale

``--skip-slow`` leaves out crowd-kit's OneCoinDawidSkene (minutes on the larger sets) and GLAD is
only run with ``--glad``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crowd.aggregation import (  # noqa: E402 - needs the repository root on sys.path first
    EMPolicy,
    Encoded,
    dawid_skene,
    encode,
    majority_vote,
    one_coin_dawid_skene,
    weighted_vote,
)

DEFAULT_DATASETS = ROOT.parent / "shared" / "datasets"
SLOW_SECONDS = 5.0
GOLD_SHARE = 0.1
GOLD_SEEDS = tuple(range(10))

Fit = Callable[[pd.DataFrame, "pd.Series | None"], pd.Series]


@dataclass(frozen=True)
class Dataset:
    name: str
    answers: pd.DataFrame  # columns task, worker, label (strings)
    truth: pd.Series  # truth label by task id


def load_datasets(folder: Path) -> list[Dataset]:
    out = []
    for path in sorted(
        p for p in folder.iterdir() if (p / "labels.csv").exists() and (p / "truth.csv").exists()
    ):
        answers = pd.read_csv(path / "labels.csv", dtype=str)[["task", "worker", "label"]]
        truth = pd.read_csv(path / "truth.csv", dtype=str).set_index("task")["truth"]
        out.append(Dataset(path.name, answers, truth))
    return out


def ours(method: Callable) -> Fit:
    """Wrap one of our functions to take and return what crowd-kit does (ids and labels as strings)."""

    def fit(df: pd.DataFrame, gold: pd.Series | None = None) -> pd.Series:
        enc = encode(df["task"].to_numpy(), df["worker"].to_numpy(), df["label"].to_numpy())
        kwargs = {} if gold is None else {"gold": enc.encode_gold(gold.to_dict())}
        res = method(enc.task_idx, enc.worker_idx, enc.label, **kwargs)
        return pd.Series(enc.labels[res.labels], index=enc.tasks)

    return fit


CK_CONVERGED = "crowd-kit DawidSkene, no early stop"


def crowdkit_methods(skip_slow: bool, glad: bool, converged: bool = False) -> dict[str, Fit]:
    from crowdkit.aggregation import GLAD, DawidSkene, MajorityVote, OneCoinDawidSkene, Wawa

    methods: dict[str, Fit] = {
        "crowd-kit MajorityVote": lambda df, gold=None: MajorityVote().fit_predict(df),
        "crowd-kit Wawa": lambda df, gold=None: Wawa().fit_predict(df),
        "crowd-kit DawidSkene": lambda df, gold=None: DawidSkene(n_iter=100).fit_predict(
            df, true_labels=gold
        ),
    }
    if not skip_slow:
        methods["crowd-kit OneCoinDawidSkene"] = lambda df, gold=None: OneCoinDawidSkene(
            n_iter=100
        ).fit_predict(df)
    if glad:
        methods["crowd-kit GLAD"] = lambda df, gold=None: GLAD().fit_predict(df)
    if converged:
        # crowd-kit stops when its objective gains less than tol, which on some sets is after two
        # iterations; this runs its same EM for all 100 iterations, as ours runs to convergence.
        methods[CK_CONVERGED] = lambda df, gold=None: DawidSkene(n_iter=100, tol=-np.inf).fit_predict(
            df, true_labels=gold
        )
    return methods


OUR_METHODS: dict[str, Fit] = {
    "ours majority": ours(majority_vote),
    "ours weighted": ours(weighted_vote),
    "ours dawid_skene": ours(dawid_skene),
    "ours one_coin": ours(one_coin_dawid_skene),
}


def correct(pred: pd.Series, truth: pd.Series) -> np.ndarray:
    """Per task with truth: is the prediction the truth?"""
    return (pred.reindex(truth.index).astype(object) == truth).to_numpy()


def accuracy(pred: pd.Series, truth: pd.Series) -> float:
    return float(correct(pred, truth).mean())


def measure(fit: Fit, df: pd.DataFrame, repeats: int) -> tuple[pd.Series, float, int]:
    """(labels, best wall seconds, tracemalloc peak bytes) for one method on one data set."""
    best = float("inf")
    pred = None
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        pred = fit(df, None)
        best = min(best, time.perf_counter() - start)
        if best > SLOW_SECONDS:
            break
    gc.collect()
    tracemalloc.start()
    fit(df, None)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert pred is not None
    return pred, best, peak


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    return "\n".join(lines)


def run_real(datasets: list[Dataset], methods: dict[str, Fit], repeats: int) -> dict[tuple[str, str], float]:
    rows, acc = [], {}
    for ds in datasets:
        for name, fit in methods.items():
            pred, seconds, peak = measure(fit, ds.answers, repeats)
            acc[(ds.name, name)] = accuracy(pred, ds.truth)
            rows.append(
                [ds.name, name, f"{acc[(ds.name, name)]:.4f}", f"{seconds:.3f}", f"{peak / 2**20:.1f}"]
            )
            print(
                f"  {ds.name} {name}: {acc[(ds.name, name)]:.4f} {seconds:.3f}s", file=sys.stderr, flush=True
            )
    print("\n## Real data sets: accuracy on tasks with truth, fit seconds (best wall), peak traced MiB\n")
    print(table(["dataset", "method", "accuracy", "fit s", "peak MiB"], rows))
    for reference in ("crowd-kit DawidSkene", CK_CONVERGED):
        if (datasets[0].name, reference) not in acc:
            continue
        print(f"\nOur Dawid-Skene vs {reference} (points):")
        for ds in datasets:
            diff = 100 * (acc[(ds.name, "ours dawid_skene")] - acc[(ds.name, reference)])
            print(f"  {ds.name}: {diff:+.2f}")
    return acc


def gold_split(truth: pd.Series, seed: int) -> tuple[pd.Series, pd.Series]:
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(truth))
    n_gold = round(GOLD_SHARE * len(truth))
    return truth.iloc[order[:n_gold]], truth.iloc[order[n_gold:]]


def run_gold(datasets: list[Dataset], theirs: Fit, label: str = "crowd-kit DawidSkene") -> None:
    rows = []
    for ds in datasets:
        scores: dict[str, list[float]] = {"ours": [], "crowd-kit": []}
        for seed in GOLD_SEEDS:
            gold, held_out = gold_split(ds.truth, seed)
            scores["ours"].append(accuracy(OUR_METHODS["ours dawid_skene"](ds.answers, gold), held_out))
            scores["crowd-kit"].append(accuracy(theirs(ds.answers, gold), held_out))
        o, t = scores["ours"], scores["crowd-kit"]
        rows.append(
            [
                ds.name,
                str(len(ds.truth) - round(GOLD_SHARE * len(ds.truth))),
                f"{o[0]:.4f}",
                f"{t[0]:.4f}",
                f"{100 * (o[0] - t[0]):+.2f}",
                f"{np.mean(o):.4f}",
                f"{np.mean(t):.4f}",
                f"{100 * (np.mean(o) - np.mean(t)):+.2f}",
            ]
        )
        print(f"  gold {ds.name}: {o} {t}", file=sys.stderr, flush=True)
    print(f"\n## {GOLD_SHARE:.0%} of the truth given as gold; accuracy on the other tasks ({label})\n")
    headers = ["dataset", "scored tasks", "ours seed 0", "crowd-kit seed 0", "diff pts"]
    headers += [f"ours mean 0-{GOLD_SEEDS[-1]}", f"crowd-kit mean 0-{GOLD_SEEDS[-1]}", "diff pts"]
    print(table(headers, rows))


# --- scale ---------------------------------------------------------------------------------------


def synthetic(n_tasks: int = 200_000, per_task: int = 5, n_workers: int = 2_000, k: int = 4, seed: int = 7):
    """(task, worker, label, truth) with honest, biased and spamming workers; deterministic."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(k, size=n_tasks, p=[0.4, 0.3, 0.2, 0.1])
    kind = rng.choice(3, size=n_workers, p=[0.7, 0.15, 0.15])  # honest, biased, spammer
    acc = rng.uniform(0.6, 0.95, size=n_workers)
    confusion = np.broadcast_to(((1 - acc) / (k - 1))[:, None, None], (n_workers, k, k)).copy()
    confusion[:, np.arange(k), np.arange(k)] = acc[:, None]
    favourite = np.eye(k)[rng.integers(k, size=n_workers)]
    biased = kind == 1
    confusion[biased] = 0.5 * confusion[biased] + 0.5 * favourite[biased][:, None, :]
    confusion[kind == 2] = 1.0 / k
    # Distinct workers per task: a random start and a random stride below n_workers / per_task.
    start = rng.integers(n_workers, size=n_tasks)
    stride = rng.integers(1, n_workers // per_task, size=n_tasks)
    worker = ((start[:, None] + np.arange(per_task) * stride[:, None]) % n_workers).ravel()
    task = np.repeat(np.arange(n_tasks), per_task)
    cdf = np.cumsum(confusion[worker, truth[task]], axis=1)
    label = np.minimum((rng.random(len(task))[:, None] > cdf).sum(axis=1), k - 1)
    return task, worker, label, truth


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def scale_child(which: str, npz: str) -> None:
    """Runs in a fresh interpreter: load the set, fit once timed, once under tracemalloc; print JSON."""
    data = np.load(npz)
    task, worker, label, truth = data["task"], data["worker"], data["label"], data["truth"]
    if which == "ours":

        def fit() -> tuple[np.ndarray, int]:
            enc = encode(task, worker, label)
            res = dawid_skene(enc.task_idx, enc.worker_idx, enc.label)
            return enc.labels[res.labels][np.argsort(enc.tasks)], res.n_iter

    else:
        from crowdkit.aggregation import DawidSkene

        df = pd.DataFrame({"task": task, "worker": worker, "label": label})

        def fit() -> tuple[np.ndarray, int]:
            model = DawidSkene(n_iter=100)
            labels = model.fit_predict(df).sort_index()
            return labels.to_numpy(), len(model.loss_history_)

    gc.collect()
    rss_before = _rss_bytes()
    wall, cpu = time.perf_counter(), time.process_time()
    pred, n_iter = fit()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    del pred
    gc.collect()
    tracemalloc.start()
    pred, _ = fit()
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    acc = float((pred == truth).mean())
    result = {"wall": wall, "cpu": cpu, "rss_growth": rss_peak - rss_before, "traced": traced}
    print(json.dumps({**result, "accuracy": acc, "n_iter": n_iter}))


def run_scale() -> None:
    task, worker, label, truth = synthetic()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        npz = os.path.join(tmp, "scale.npz")
        np.savez(npz, task=task, worker=worker, label=label, truth=truth)
        for which in ("ours", "crowd-kit"):
            out = subprocess.run(
                [sys.executable, __file__, "--scale-child", which, npz],
                capture_output=True,
                text=True,
                check=True,
            )
            results[which] = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"  scale {which}: {results[which]}", file=sys.stderr, flush=True)
    print(
        f"\n## Scale: {len(label):,} labels, {truth.size:,} tasks, {worker.max() + 1:,} workers, 4 classes\n"
    )
    rows = [
        [
            name,
            f"{r['accuracy']:.4f}",
            str(r["n_iter"]),
            f"{r['wall']:.2f}",
            f"{r['cpu']:.2f}",
            f"{r['rss_growth'] / 2**20:.0f}",
            f"{r['traced'] / 2**20:.0f}",
        ]
        for name, r in (("ours dawid_skene", results["ours"]), ("crowd-kit DawidSkene", results["crowd-kit"]))
    ]
    print(
        table(
            [
                "method",
                "accuracy",
                "EM iterations",
                "wall s",
                "CPU s",
                "peak RSS growth MiB",
                "peak traced MiB",
            ],
            rows,
        )
    )
    o, t = results["ours"], results["crowd-kit"]
    print(
        f"\nSpeed-up: {t['wall'] / o['wall']:.1f}x wall, {t['cpu'] / o['cpu']:.1f}x CPU; "
        f"memory: ours {o['traced'] / t['traced']:.2f}x of crowd-kit's traced peak, "
        f"{o['rss_growth'] / max(t['rss_growth'], 1):.2f}x of its RSS growth"
    )


# --- dynamic overlap -------------------------------------------------------------------------------


# Stopping decisions use the posterior *mean* of each confusion row under the same Dirichlet(1 + I)
# prior whose *mode* (MAP) the default fit uses: one more pseudo-count in every cell. With a handful
# of answers per worker the MAP rows are near 0/1 and the posteriors overconfident, which stops
# tasks too early; the posterior mean carries the estimation doubt into the confidence.
STOP_MODEL = {"smoothing": 1.0}


def replay_dynamic_overlap(
    enc: Encoded, *, target: float, min_overlap: int, max_overlap: int, seed: int
) -> tuple[np.ndarray, int]:
    """Honest online replay of dynamic overlap. Returns (final labels, answers bought).

    Each task's real answers are put in a random order (``seed``) and revealed one at a time, as if
    bought. Round 0 buys ``min_overlap`` answers for every task. Then, each round: re-fit
    Dawid-Skene (``STOP_MODEL``) on the answers bought so far only, warm-started from the previous
    round as the product's periodic re-fit would be; close every task whose posterior has reached
    ``target`` (a closed task never reopens: it stopped taking answers); buy one more answer for
    every task still open, up to ``max_overlap`` or the answers that exist. The worker model never
    sees an answer that was not bought, so the savings are not borrowed from the full data. Final
    labels: the default Dawid-Skene fit on everything bought.
    """
    task_idx, worker_idx, label = enc.task_idx, enc.worker_idx, enc.label
    sizes = {"n_tasks": enc.n_tasks, "n_workers": enc.n_workers, "n_classes": enc.n_classes}
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(task_idx)), task_idx))
    t_sorted = task_idx[order]
    starts = np.searchsorted(t_sorted, np.arange(enc.n_tasks))
    rank = np.empty(len(order), dtype=np.intp)
    rank[order] = np.arange(len(order)) - starts[t_sorted]  # place of each answer in its task's order
    available = np.minimum(np.bincount(task_idx, minlength=enc.n_tasks), max_overlap)
    bought = np.minimum(available, min_overlap)
    is_open = np.ones(enc.n_tasks, dtype=bool)
    init = None
    while True:
        mask = rank < bought[task_idx]
        res = dawid_skene(
            task_idx[mask], worker_idx[mask], label[mask], **sizes, init_posteriors=init, **STOP_MODEL
        )
        init = res.posteriors
        is_open &= (res.confidence < target) & (bought < available)
        if not is_open.any():
            break
        bought = bought + is_open
    final = dawid_skene(task_idx[mask], worker_idx[mask], label[mask], **sizes)
    return final.labels, int(mask.sum())


def run_overlap(
    datasets: list[Dataset], targets: list[float], headline: float, min_overlap: int, seeds: list[int]
) -> None:
    print(
        f"\n## Dynamic overlap replay (min_overlap {min_overlap}, max_overlap = all answers a task has; "
        f"order seeds {seeds}; honest online re-fit each round; stop model {STOP_MODEL})\n"
    )
    rows, curve_rows = [], []
    for ds in datasets:
        enc = encode(
            ds.answers["task"].to_numpy(), ds.answers["worker"].to_numpy(), ds.answers["label"].to_numpy()
        )
        scored = np.searchsorted(enc.tasks, ds.truth.index.to_numpy())
        truth = np.searchsorted(enc.labels, ds.truth.to_numpy())
        full = dawid_skene(enc.task_idx, enc.worker_idx, enc.label)
        full_acc = float((full.labels[scored] == truth).mean())
        for target in targets:
            accs, shares = [], []
            for seed in seeds:
                labels, bought = replay_dynamic_overlap(
                    enc, target=target, min_overlap=min_overlap, max_overlap=10**9, seed=seed
                )
                accs.append(float((labels[scored] == truth).mean()))
                shares.append(bought / len(enc.label))
            acc, share = float(np.mean(accs)), float(np.mean(shares))
            curve_rows.append([ds.name, f"{target}", f"{share:.3f}", f"{acc:.4f}"])
            if target == headline:
                diff = 100 * (acc - full_acc)
                saved = 100 * (1 - share)
                met = "yes" if diff >= -0.5 and saved >= 30 else "no"
                rows.append([ds.name, f"{full_acc:.4f}", f"{acc:.4f}", f"{diff:+.2f}", f"{saved:.1f}%", met])
            print(f"  overlap {ds.name} {target}: {acc:.4f} {share:.3f}", file=sys.stderr, flush=True)
    print(f"Target confidence {headline}:\n")
    print(
        table(
            ["dataset", "all answers acc", "dynamic acc", "diff pts", "answers saved", "within 0.5 & >=30%"],
            rows,
        )
    )
    print("\nLabels-vs-accuracy curve (share of all answers bought, accuracy; mean over seeds):\n")
    print(table(["dataset", "target", "answers bought", "accuracy"], curve_rows))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("datasets", nargs="?", type=Path, default=DEFAULT_DATASETS)
    parser.add_argument("--skip-slow", action="store_true", help="leave out crowd-kit OneCoinDawidSkene")
    parser.add_argument("--glad", action="store_true", help="also run crowd-kit GLAD (slow)")
    parser.add_argument(
        "--crowdkit-converged",
        action="store_true",
        help="also compare with crowd-kit DawidSkene run 100 iterations without its early stop",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-scale", action="store_true")
    parser.add_argument("--no-overlap", action="store_true")
    parser.add_argument("--targets", type=float, nargs="+", default=[0.9, 0.95, 0.99, 0.995, 0.999])
    parser.add_argument("--headline-target", type=float, default=0.995)
    parser.add_argument("--min-overlap", type=int, default=4)
    parser.add_argument("--overlap-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--scale-child", nargs=2, metavar=("WHICH", "NPZ"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scale_child:
        scale_child(*args.scale_child)
        return
    import crowdkit
    import scipy

    datasets = load_datasets(args.datasets)
    if not datasets:
        sys.exit(f"no data sets (labels.csv + truth.csv) under {args.datasets}")
    print(
        f"# Aggregation benchmark: numpy {np.__version__}, scipy {scipy.__version__}, "
        f"pandas {pd.__version__}, crowd-kit {crowdkit.__version__}, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs"
    )
    print(f"Data: {args.datasets} ({', '.join(d.name for d in datasets)})")
    print(f"Our Dawid-Skene defaults: {EMPolicy()}")
    theirs = crowdkit_methods(args.skip_slow, args.glad, args.crowdkit_converged)
    run_real(datasets, {**OUR_METHODS, **theirs}, args.repeats)
    run_gold(datasets, theirs["crowd-kit DawidSkene"])
    if args.crowdkit_converged:
        run_gold(datasets, theirs[CK_CONVERGED], CK_CONVERGED)
    if not args.no_scale:
        run_scale()
    if not args.no_overlap:
        targets = sorted({*args.targets, args.headline_target})
        run_overlap(datasets, targets, args.headline_target, args.min_overlap, args.overlap_seeds)


if __name__ == "__main__":
    main()
