#!/usr/bin/env python
"""Quality-control simulation: a simulated crowd works one batch through the service layer.

The crowd is drawn from a real label set in ``--datasets-dir`` (``labels.csv`` worker,task,label;
``truth.csv`` task,truth):

- honest workers (75 %): each gets the measured accuracy of a real worker of the dataset (on tasks
  with a known answer, workers with at least ``MIN_REAL_ANSWERS`` such answers), drawn with
  replacement; they answer right with that probability, else another class uniformly; they take
  ~10 s per answer (log-normal) and ~3 % of their answers are quick (< 2 s) anyway;
- spammers (20 %): answer uniformly at random, ~4 s per answer (not fast enough to trip the
  fast-response rule: gold has to catch them);
- fast clickers (5 %): answer in 0.4 to 1.8 s, half of them at random, half always the same label.

Every worker works until the batch has nothing left for them or a restriction bars them. Each
step goes through the same calls as the API views: ``batch_get_for_claim`` (restrictions and
filters, 403) then ``assignment_claim`` (one task per claim), then ``assignment_submit``; the QC
rules run inside ``assignment_submit`` exactly as in production. Review mode is ``manual``: answers
wait for a verdict, a rule with ``reject_pending`` rejects the worker's waiting answers (their
slots reopen for other workers) and the auto-accept sweep accepts the rest 72 h later.

Time is simulated, not slept. The services read the clock only through ``timezone.now()`` (the
SQL they run takes ``now`` as a parameter; nothing uses the database clock), so the simulation
patches ``django.utils.timezone.now`` to a discrete-event clock: a claim happens at the worker's
simulated time, its submit is a later event at claim time + the worker's answer time, and other
workers' events interleave in time order. ``claimed_at``/``submitted_at`` in the rows are those
simulated times, which is what the fast-response rule measures (``submitted_at`` minus the later
of ``claimed_at`` and the previous answer). The auto-accept sweep is run every simulated hour and
once 73 h after the last answer.

Gold: 10 % of claims (``gold_rate``) are served from a class-balanced sample of tasks with a known
answer (a constant clicker would otherwise pass gold on a skewed dataset); the rest of the tasks
with a known answer are the regular work, and the truth measures majority-vote accuracy. The same
crowd (same profiles and random streams) runs twice on fresh batches: with the rule set and
without any rule. Reported: the share of accepted regular answers from spammers and fast clickers,
the share of honest workers with accuracy ≥ 0.8 wrongly restricted, gold overhead (gold answers /
all answers) and majority-vote accuracy over accepted answers (ties broken at random, a task
without an accepted answer counts as wrong).

It runs on a dedicated PostgreSQL database, dropped and recreated each run (default
``postgres://postgres@127.0.0.1:5432/crowdmarket_qcsim``), with ``bench/claim_submit.py``'s helpers.

Examples::

    .venv/bin/python bench/qc_simulation.py --dataset sentiment --seed 7
    .venv/bin/python bench/qc_simulation.py --dataset rte --seed 7 --workers 40
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import heapq
import itertools
import json
import math
import random
import sys
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/crowdmarket_qcsim"
DEFAULT_DATASETS = ROOT.parent / "shared" / "datasets"
MIN_REAL_ANSWERS = 20
IDLE_RETRIES = 3
HONEST, SPAMMER, FAST = "honest", "spammer", "fast clicker"
START = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)

# The rule set under test. Gold and agreement use the sequential test (``RuleTest.SEQUENTIAL``):
# restrict when the worker's answers are at least 1 / alpha = 100 times likelier from a random
# clicker (accuracy ``bad`` = 1 / classes, chance level) than from a good worker (``good`` = 0.8,
# the accuracy the target protects). By Ville's inequality a worker at 0.8 or better is then
# restricted by each rule with probability at most 1 %, 2 % for the two together, however long
# they work; a random clicker's likelihood ratio drifts up to the bar however unlucky the first
# answers were. Nothing here depends on the dataset beyond its number of classes.
# - gold: over the worker's last (up to) 100 control answers.
# - agreement: over the worker's last (up to) 200 regular answers, on the tasks with two or more
#   other answers. Each comparison is weighed by how sure the other answers make the truth, their
#   authors weighted by their accuracy on control tasks (centred on the crowd's), so the chance of
#   agreeing that the test assumes for a worker at 0.8 is what such a worker really has, also in
#   a crowd whose majorities are often wrong.
# - fast: 5 of the last 10 answers under 2 s; honest workers are quick on ~3 % of answers.
# All restrict from the project and reject the worker's answers still waiting for review.
GOOD_ACCURACY = 0.8
ALPHA = 0.01


def rules_for(classes: list[str]) -> list[dict[str, Any]]:
    sequential = {
        "test": "sequential",
        "bad": round(1 / len(classes), 4),
        "good": GOOD_ACCURACY,
        "alpha": ALPHA,
    }
    action = {"scope": "project", "duration_hours": 72, "reject_pending": True}
    return [
        {"kind": "gold_accuracy", "params": {"window": 100, **sequential}, "action": action},
        {
            "kind": "majority_agreement",
            "params": {"window": 200, "min_votes": 2, **sequential},
            "action": action,
        },
        {
            "kind": "fast_responses",
            "params": {"window": 10, "count": 5, "seconds": 2.0},
            "action": {"scope": "project", "duration_hours": 24, "reject_pending": True},
        },
    ]


# --- the crowd -----------------------------------------------------------------------------------


@dataclass
class Profile:
    """One simulated worker. ``accuracy`` is the real worker's (honest) or nominal (others)."""

    kind: str
    accuracy: float
    seed: int
    constant: str | None = None

    def answer(self, rng: random.Random, truth: str, classes: list[str]) -> str:
        if self.constant is not None:
            return self.constant
        if self.kind == HONEST:
            if rng.random() < self.accuracy:
                return truth
            return rng.choice([c for c in classes if c != truth])
        return rng.choice(classes)

    def seconds(self, rng: random.Random) -> float:
        if self.kind == FAST:
            return rng.uniform(0.4, 1.8)
        if self.kind == SPAMMER:
            return rng.lognormvariate(math.log(4.0), 0.3)
        if rng.random() < 0.03:
            return rng.uniform(1.0, 2.0)
        return rng.lognormvariate(math.log(10.0), 0.5)


@dataclass
class Dataset:
    name: str
    truth: dict[str, str]
    classes: list[str]
    worker_accuracies: list[float]


def load_dataset(directory: Path) -> Dataset:
    with open(directory / "truth.csv", newline="") as f:
        truth = {row["task"]: row["truth"] for row in csv.DictReader(f)}
    right: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    labels: set[str] = set(truth.values())
    with open(directory / "labels.csv", newline="") as f:
        for row in csv.DictReader(f):
            labels.add(row["label"])
            if row["task"] in truth:
                seen[row["worker"]] += 1
                right[row["worker"]] += row["label"] == truth[row["task"]]
    accuracies = sorted(right[w] / n for w, n in seen.items() if n >= MIN_REAL_ANSWERS)
    if not accuracies:
        raise SystemExit(f"{directory}: no worker with {MIN_REAL_ANSWERS} answers on known tasks")
    return Dataset(directory.name, truth, sorted(labels), accuracies)


def crowd_draw(*, accuracies: list[float], classes: list[str], n: int, rng: random.Random) -> list[Profile]:
    """``n`` workers: 20 % spammers, 5 % fast clickers (at least one of each), the rest honest."""
    n_spam = max(1, round(n * 0.20))
    n_fast = max(1, round(n * 0.05))
    profiles = [Profile(SPAMMER, 1 / len(classes), rng.randrange(2**31)) for _ in range(n_spam)]
    for i in range(n_fast):
        constant = rng.choice(classes) if i % 2 else None
        profiles.append(Profile(FAST, 1 / len(classes), rng.randrange(2**31), constant))
    profiles += [
        Profile(HONEST, rng.choice(accuracies), rng.randrange(2**31)) for _ in range(n - n_spam - n_fast)
    ]
    rng.shuffle(profiles)
    return profiles


def tasks_draw(
    *, truth: dict[str, str], n_regular: int, n_gold: int, rng: random.Random
) -> tuple[list[str], list[str]]:
    """Disjoint samples of tasks with a known answer: class-balanced gold, then regular work."""
    by_class: dict[str, list[str]] = defaultdict(list)
    for task in sorted(truth):
        by_class[truth[task]].append(task)
    for tasks in by_class.values():
        rng.shuffle(tasks)
    gold: list[str] = []
    for tasks in itertools.cycle(list(by_class.values())):
        if len(gold) >= n_gold or not any(by_class.values()):
            break
        if tasks:
            gold.append(tasks.pop())
    rest = [t for tasks in by_class.values() for t in tasks]
    rng.shuffle(rest)
    return gold, rest[:n_regular]


# --- the simulated clock -------------------------------------------------------------------------


class Clock:
    def __init__(self, start: datetime) -> None:
        self.at = start

    def now(self) -> datetime:
        return self.at


@contextmanager
def frozen(clock: Clock):
    """Every ``timezone.now()`` (services, ``auto_now`` fields) reads the simulated clock."""
    with mock.patch("django.utils.timezone.now", clock.now):
        yield


# --- one run -------------------------------------------------------------------------------------


@dataclass
class Result:
    label: str
    answers: int = 0
    gold_answers: int = 0
    accepted: int = 0
    accepted_bad: int = 0
    mv_accuracy: float = 0.0
    covered: float = 0.0
    restricted: dict[str, int] = field(default_factory=dict)
    crowd: dict[str, int] = field(default_factory=dict)
    honest_good: int = 0
    honest_good_restricted: int = 0
    answers_to_catch: list[int] = field(default_factory=list)  # spammers': answers before restriction
    restricted_honest: list[float] = field(default_factory=list)  # restricted honest workers' accuracies
    simulated_minutes: float = 0.0
    wall_seconds: float = 0.0

    @property
    def bad_share(self) -> float:
        return self.accepted_bad / self.accepted if self.accepted else 0.0

    @property
    def wrongly_restricted(self) -> float:
        return self.honest_good_restricted / self.honest_good if self.honest_good else 0.0

    @property
    def gold_overhead(self) -> float:
        return self.gold_answers / self.answers if self.answers else 0.0


def _setup_batch(
    *,
    label: str,
    classes: list[str],
    gold: list[tuple[str, str]],
    regular: list[str],
    overlap: int,
    gold_rate: float,
    rules: list[dict[str, Any]],
):
    from crowd.models import QualityRule
    from crowd.quality.rules import RuleSerializer
    from marketplace.enums import ReviewMode, Role
    from marketplace.models import Task
    from marketplace.services.accounts import user_create
    from marketplace.services.batches import batch_create, batch_publish
    from marketplace.services.projects import project_create

    owner = user_create(email=f"requester-{label}@qcsim.invalid", roles=[Role.REQUESTER])
    project = project_create(
        requester=owner.requester,
        name=f"qcsim {label}",
        input_schema={"type": "object", "properties": {"item": {"type": "string"}}, "required": ["item"]},
        answer_schema={"enum": classes},
    )
    batch = batch_create(
        project=project,
        name=f"qcsim {label}",
        # Free work: money is not what this measures, and at price 0 publishing reserves nothing
        # and a verdict pays nothing, so no funding step is needed.
        price_cents=0,
        overlap=overlap,
        lease_seconds=600,
        gold_rate=gold_rate,
        review_mode=ReviewMode.MANUAL,
        auto_accept_after_hours=72,
    )
    Task.objects.bulk_create(
        [Task(batch=batch, input={"item": t}, external_id=t, overlap=overlap) for t in regular]
        + [
            Task(batch=batch, input={"item": t}, external_id=t, overlap=overlap, is_gold=True, gold_answer=a)
            for t, a in gold
        ],
        batch_size=2000,
    )
    for rule in rules:
        serializer = RuleSerializer(data=rule)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        QualityRule.objects.create(
            batch=batch, kind=data["kind"], params=data["params"], action=data["action"]
        )
    return batch_publish(batch=batch)


def simulate(
    *,
    label: str,
    profiles: list[Profile],
    classes: list[str],
    gold: list[tuple[str, str]],
    regular: dict[str, str],
    rules: list[dict[str, Any]],
    overlap: int = 3,
    gold_rate: float = 0.1,
    seed: int = 0,
) -> Result:
    """Run ``profiles`` on a fresh batch in the current database and measure the outcome.

    ``regular`` maps each regular task's external id to its truth; ``gold`` is (external id,
    answer) pairs. Deterministic for a seed up to the database's own random gold pivot.
    """
    from django.db import connection

    from crowd import selectors
    from crowd.enums import AssignmentStatus
    from crowd.models import Assignment, Restriction, Worker
    from crowd.quality.review import assignments_auto_accept
    from crowd.services import claims
    from crowd.services.submissions import assignment_submit
    from marketplace.errors import Conflict, Forbidden
    from marketplace.models import User

    wall = time.perf_counter()
    clock = Clock(START)
    with frozen(clock):
        batch = _setup_batch(
            label=label,
            classes=classes,
            gold=gold,
            regular=sorted(regular),
            overlap=overlap,
            gold_rate=gold_rate,
            rules=rules,
        )
        users = User.objects.bulk_create(
            [User(email=f"{label}-w{i}@qcsim.invalid", password="!") for i in range(len(profiles))]
        )
        workers = Worker.objects.bulk_create([Worker(user=u) for u in users])
    gold_truth = dict(gold)
    truth_of = {**regular, **gold_truth}
    kind_of = {w.pk: p.kind for w, p in zip(workers, profiles, strict=True)}
    rngs = [random.Random(p.seed) for p in profiles]
    # Gold draws: the claim's own RNG, seeded so both runs and reruns draw alike.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT setseed(%s)", [(seed % 1000) / 1000])
    events: list[tuple[datetime, int, int, Any]] = []  # (time, order, worker index, lease or None)
    order = itertools.count()
    for i, rng in enumerate(rngs):
        heapq.heappush(events, (START + timedelta(seconds=rng.uniform(0, 60)), next(order), i, None))
    next_sweep = START + timedelta(hours=1)
    idle = [0] * len(profiles)
    with frozen(clock), mock.patch.object(claims, "_rng", random.Random(seed)):
        while events:
            at, _, i, lease = heapq.heappop(events)
            while at >= next_sweep:
                clock.at = next_sweep
                assignments_auto_accept()
                next_sweep += timedelta(hours=1)
            clock.at = at
            worker, profile, rng = workers[i], profiles[i], rngs[i]
            if lease is not None:
                item = lease[1]
                # A 409: a rule restricted this worker and took the lease back meanwhile.
                with contextlib.suppress(Conflict):
                    assignment_submit(
                        worker=worker,
                        assignment_id=lease[0],
                        answer=profile.answer(rng, truth_of[item], classes),
                        idempotency_key=f"{lease[0]}",
                    )
                heapq.heappush(events, (at + timedelta(seconds=rng.uniform(0.5, 3)), next(order), i, None))
                continue
            try:
                found, active, overdue = selectors.batch_get_for_claim(worker=worker, batch_id=batch.pk)
            except Forbidden:
                continue  # restricted: this worker is done with the project
            leases = claims.assignment_claim(
                worker=worker, batch=found, count=1, active_leases=active, has_overdue=overdue
            )
            if not leases:
                # Nothing left for now; rejections may reopen slots, so look again a few times.
                idle[i] += 1
                if idle[i] <= IDLE_RETRIES:
                    heapq.heappush(events, (at + timedelta(minutes=2), next(order), i, None))
                continue
            idle[i] = 0
            (claimed,) = leases
            item = json.loads(claimed.input_json)["item"]
            heapq.heappush(
                events, (at + timedelta(seconds=profile.seconds(rng)), next(order), i, (claimed.id, item))
            )
        end = clock.at
        clock.at = end + timedelta(hours=73)
        assignments_auto_accept()
    return _measure(
        label=label,
        batch_id=batch.pk,
        kind_of=kind_of,
        profiles={w.pk: p for w, p in zip(workers, profiles, strict=True)},
        regular=regular,
        minutes=(end - START).total_seconds() / 60,
        wall=time.perf_counter() - wall,
        models=(Assignment, Restriction, AssignmentStatus),
    )


def _measure(
    *,
    label: str,
    batch_id: int,
    kind_of: dict[int, str],
    profiles: dict[int, Profile],
    regular: dict[str, str],
    minutes: float,
    wall: float,
    models: tuple[Any, Any, Any],
) -> Result:
    Assignment, Restriction, AssignmentStatus = models
    answered = [AssignmentStatus.SUBMITTED, AssignmentStatus.ACCEPTED, AssignmentStatus.REJECTED]
    rows = list(
        Assignment.objects.filter(batch_id=batch_id, status__in=answered).values_list(
            "worker_id", "is_gold", "status", "answer", "task__external_id"
        )
    )
    result = Result(label=label, simulated_minutes=minutes, wall_seconds=wall)
    result.answers = len(rows)
    result.gold_answers = sum(1 for r in rows if r[1])
    votes: dict[str, Counter[str]] = defaultdict(Counter)
    for worker_id, is_gold, status, answer, item in rows:
        if is_gold or status != AssignmentStatus.ACCEPTED:
            continue
        result.accepted += 1
        result.accepted_bad += kind_of[worker_id] != HONEST
        votes[item][answer] += 1
    tie_rng = random.Random(0)
    right = 0
    for item, truth in regular.items():
        counts = votes.get(item)
        if counts:
            top = max(counts.values())
            right += tie_rng.choice(sorted(a for a, n in counts.items() if n == top)) == truth
    result.mv_accuracy = right / len(regular)
    result.covered = len(votes) / len(regular)
    first: dict[int, datetime] = {}
    for worker_id, created_at in Restriction.objects.filter(worker_id__in=kind_of).values_list(
        "worker_id", "created_at"
    ):
        first[worker_id] = min(created_at, first.get(worker_id, created_at))
    restricted = set(first)
    result.answers_to_catch = sorted(
        Assignment.objects.filter(batch_id=batch_id, worker_id=w, submitted_at__lte=at).count()
        for w, at in first.items()
        if kind_of[w] == SPAMMER
    )
    result.restricted_honest = sorted(profiles[w].accuracy for w in restricted if kind_of[w] == HONEST)
    result.crowd = dict(Counter(kind_of.values()))
    result.restricted = dict(Counter(kind_of[w] for w in restricted))
    good = [w for w, p in profiles.items() if p.kind == HONEST and p.accuracy >= 0.8]
    result.honest_good = len(good)
    result.honest_good_restricted = sum(1 for w in good if w in restricted)
    return result


# --- reporting -----------------------------------------------------------------------------------


def table(dataset: str, with_qc: Result, without: Result) -> str:
    def restricted(r: Result) -> str:
        return ", ".join(f"{k} {r.restricted.get(k, 0)}/{r.crowd.get(k, 0)}" for k in (SPAMMER, FAST, HONEST))

    rows = [
        ("accepted answers from spammers + fast clickers (≤ 3 %)", "bad_share", "{:.2%}"),
        ("honest workers with accuracy ≥ 0.8 restricted (≤ 2 %)", "wrongly_restricted", "{:.2%}"),
        ("gold overhead (gold answers / all answers)", "gold_overhead", "{:.2%}"),
        ("majority-vote accuracy over accepted answers", "mv_accuracy", "{:.4f}"),
        ("regular tasks with an accepted answer", "covered", "{:.2%}"),
        ("answers (all, incl. gold and rejected)", "answers", "{:d}"),
        ("accepted regular answers", "accepted", "{:d}"),
        ("simulated minutes / wall seconds", None, None),
        ("workers restricted", None, None),
    ]
    width = max(len(r[0]) for r in rows)
    out = [f"{dataset}: {'':{width - len(dataset) - 2}}  {'with QC':>24}  {'without QC':>24}"]
    for title, attr, fmt in rows:
        if attr is None and title.startswith("simulated"):
            a, b = (f"{r.simulated_minutes:.0f} / {r.wall_seconds:.0f}" for r in (with_qc, without))
        elif attr is None:
            a, b = restricted(with_qc), restricted(without)
            out.append(f"{title:{width}}  {a}  |  {b}")
            continue
        else:
            a, b = (fmt.format(getattr(r, attr)) for r in (with_qc, without))
        out.append(f"{title:{width}}  {a:>24}  {b:>24}")
    return "\n".join(out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="sentiment")
    parser.add_argument("--datasets-dir", type=Path, default=DEFAULT_DATASETS)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=40, help="Crowd size (20 %% spam, 5 %% fast).")
    parser.add_argument("--tasks", type=int, default=1500, help="Regular tasks (at most those with truth).")
    parser.add_argument("--gold", type=int, default=150, help="Gold tasks (class-balanced).")
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--database-url", default=DEFAULT_DB)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT / "bench"))
    from benchdb import django_setup, recreate_database

    dataset = load_dataset(args.datasets_dir / args.dataset)
    rng = random.Random(args.seed)
    gold_ids, regular_ids = tasks_draw(truth=dataset.truth, n_regular=args.tasks, n_gold=args.gold, rng=rng)
    profiles = crowd_draw(
        accuracies=dataset.worker_accuracies, classes=dataset.classes, n=args.workers, rng=rng
    )
    honest = sorted(p.accuracy for p in profiles if p.kind == HONEST)
    print(
        f"{dataset.name}: {len(dataset.worker_accuracies)} real workers with ≥ {MIN_REAL_ANSWERS} known "
        f"answers (median accuracy {dataset.worker_accuracies[len(dataset.worker_accuracies) // 2]:.2f}); "
        f"crowd of {len(profiles)}: {Counter(p.kind for p in profiles)}; honest accuracies "
        f"{', '.join(f'{a:.2f}' for a in honest)}; {len(regular_ids)} regular + {len(gold_ids)} gold tasks, "
        f"overlap {args.overlap}, gold rate 0.1, seed {args.seed}",
        flush=True,
    )
    recreate_database(args.database_url)
    django_setup(args.database_url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    common = {
        "profiles": profiles,
        "classes": dataset.classes,
        "gold": [(t, dataset.truth[t]) for t in gold_ids],
        "regular": {t: dataset.truth[t] for t in regular_ids},
        "overlap": args.overlap,
        "seed": args.seed,
    }
    with_qc = simulate(label="qc", rules=rules_for(dataset.classes), **common)
    without = simulate(label="noqc", rules=[], **common)
    print(table(dataset.name, with_qc, without))
    catch = with_qc.answers_to_catch
    print(
        f"with QC: spammers restricted after {', '.join(map(str, catch)) or '-'} answers"
        f"{f' (median {catch[len(catch) // 2]})' if catch else ''}; restricted honest workers' accuracies "
        f"{', '.join(f'{a:.2f}' for a in with_qc.restricted_honest) or '-'}"
    )
    met = with_qc.bad_share <= 0.03 and with_qc.wrongly_restricted <= 0.02
    print(f"targets {'met' if met else 'NOT met'}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
