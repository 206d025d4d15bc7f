"""Worker reliability: a Beta posterior over gold answers, per project and global.

Prior: Beta(4, 1), i.e. a new worker starts at a mean of 0.8 (what honest crowd workers reach on
typical labelling tasks) worth 5 gold answers. Weak enough that ~10 wrong gold answers pull a
spammer below 0.5, strong enough that one unlucky miss does not sink a newcomer. The estimate is
the posterior mean ``(4 + correct) / (5 + total)`` with a 95 % equal-tailed credible interval;
consensus later uses the mean as the answer weight.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Sum
from scipy.stats import beta as beta_dist

from ..models import Reliability

PRIOR_ALPHA = 4.0
PRIOR_BETA = 1.0
CREDIBLE_MASS = 0.95


@dataclass(frozen=True)
class Estimate:
    mean: float
    low: float
    high: float
    gold_answers: int
    gold_correct: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "score": round(self.mean, 4),
            "interval": [round(self.low, 4), round(self.high, 4)],
            "gold_answers": self.gold_answers,
            "gold_correct": self.gold_correct,
        }


def reveal_delay() -> timedelta:
    """How old a control answer must be before anything a worker sees depends on it: their
    reliability in ``work/me``, reliability filters on batches, and the ``gold`` review mode's
    verdicts (``GOLD_REVEAL_DELAY_HOURS``). A figure that moved right after a submit would tell the
    worker that this task was a control task, and whether they got it right."""
    return timedelta(hours=settings.GOLD_REVEAL_DELAY_HOURS)


PRIOR_STRENGTH = PRIOR_ALPHA + PRIOR_BETA
PRIOR_MEAN = PRIOR_ALPHA / PRIOR_STRENGTH


def posterior_mean(correct: int, total: int, *, prior_mean: float = PRIOR_MEAN) -> float:
    """The estimate's mean alone (the consensus weight), without the interval's Beta quantiles.

    ``prior_mean`` moves the prior's centre and keeps its strength (``PRIOR_STRENGTH`` answers),
    e.g. to the crowd's own accuracy (``crowd_accuracy``)."""
    return (prior_mean * PRIOR_STRENGTH + correct) / (PRIOR_STRENGTH + total)


def crowd_accuracy(project_id: int, *, exclude: int | None = None) -> float:
    """The project's pooled accuracy on control tasks (Laplace-smoothed), one worker left out.

    A prior centre for judging the others by the crowd they are in rather than by the platform
    prior (0.8): in a crowd worse than that, the platform prior makes majorities look surer than
    they are.
    """
    rows = Reliability.objects.filter(project_id=project_id)
    if exclude is not None:
        rows = rows.exclude(worker_id=exclude)
    totals = rows.aggregate(correct=Sum("gold_correct"), total=Sum("gold_total"))
    return (1 + (totals["correct"] or 0)) / (2 + (totals["total"] or 0))


def estimate(correct: int, total: int) -> Estimate:
    a, b = PRIOR_ALPHA + correct, PRIOR_BETA + (total - correct)
    tail = (1 - CREDIBLE_MASS) / 2
    return Estimate(
        mean=posterior_mean(correct, total),
        low=float(beta_dist.ppf(tail, a, b)),
        high=float(beta_dist.ppf(1 - tail, a, b)),
        gold_answers=total,
        gold_correct=correct,
    )


def mean_sql(correct: str, total: str) -> str:
    """The posterior mean as SQL over two column expressions (for filters)."""
    return f"(({PRIOR_ALPHA} + {correct}) / ({PRIOR_ALPHA + PRIOR_BETA} + {total}))"


def reliability_bump(*, worker_id: int, project_id: int, correct: bool) -> None:
    """Count one gold answer in the worker's project and global rows. Caller holds a transaction.

    One atomic ``UPDATE ... SET x = x + 1`` per row, so parallel submits never lose a count; the
    row is created on first use (a unique constraint settles two first uses racing).
    """
    for project in (project_id, None):
        bump = {"gold_total": F("gold_total") + 1}
        if correct:
            bump["gold_correct"] = F("gold_correct") + 1
        if Reliability.objects.filter(worker_id=worker_id, project_id=project).update(**bump):
            continue
        try:
            with transaction.atomic():
                Reliability.objects.create(
                    worker_id=worker_id, project_id=project, gold_total=1, gold_correct=int(correct)
                )
        except IntegrityError:
            Reliability.objects.filter(worker_id=worker_id, project_id=project).update(**bump)
