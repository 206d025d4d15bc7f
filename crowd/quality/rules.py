"""QC rules: validation of their declarative data, and their evaluation after each submit/skip.

A rule is ``kind`` + ``params`` (a condition over a rolling window of the worker's work in the
batch) → ``action`` (restrict at a scope for a duration or for good, optionally rejecting the
worker's answers in the batch still under review). The window starts after the rule's last
restriction of the worker, so a worker coming back from a cooldown starts with a clean slate.

Evaluation runs right after the submit or skip commits, in its own transaction that locks the
worker row: two evaluations for one worker (parallel submits) run one after the other, and the
second sees the restriction the first created, so a rule never restricts twice.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F, TextChoices
from django.db.models.functions import Coalesce
from django.utils import timezone
from rest_framework import serializers

from marketplace.models import Batch

from ..enums import ANSWERED, ASSIGNMENT_TRANSITIONS, Actor, AssignmentStatus, RestrictionScope, RuleKind
from ..models import Assignment, QualityRule, Reliability, Restriction, Worker
from ..services.leases import leases_release
from .reliability import crowd_accuracy, posterior_mean
from .restrictions import active_q, restriction_create
from .review import verdict_apply

MAX_WINDOW = 1000
MAX_DURATION_HOURS = 24 * 365


class _Window(serializers.Serializer):
    window = serializers.IntegerField(min_value=1, max_value=MAX_WINDOW)


class RuleTest(TextChoices):
    """How ``gold_accuracy`` and ``majority_agreement`` decide that a worker is below the bar.

    Kept here rather than in ``crowd/enums.py``: it is a value inside ``QualityRule.params``
    (JSON, validated by this module), not a model field's choices.

    mean        the share right over the window is < ``threshold`` after ≥ ``min_answers``
    sequential  Wald's sequential probability ratio test: the window's answers are ≥ ``1 / alpha``
                times likelier from a worker at accuracy ``bad`` than from one at ``good``; a
                worker at ``good`` or better is restricted with probability ≤ ``alpha``
    """

    MEAN = "mean"
    SEQUENTIAL = "sequential"


MEAN_ONLY = ("threshold",)
SEQUENTIAL_ONLY = ("bad", "good", "alpha")


class GoldAccuracyParams(_Window):
    """Gold: ``window`` and ``min_answers`` count control answers. The mean test (the default)
    thresholds the share right; the sequential one weighs the evidence (``RuleTest``), so a good
    worker's early misses do not restrict them and a random clicker's early luck does not save them.
    """

    test = serializers.ChoiceField(choices=RuleTest.choices, default=RuleTest.MEAN)
    min_answers = serializers.IntegerField(
        min_value=1, max_value=MAX_WINDOW, required=False, help_text="Required by the mean test."
    )
    threshold = serializers.FloatField(min_value=0.0, max_value=1.0, required=False)
    bad = serializers.FloatField(
        min_value=0.01,
        max_value=0.99,
        required=False,
        help_text="Sequential: the accuracy of a worker to restrict, e.g. chance level (1 / classes).",
    )
    good = serializers.FloatField(
        min_value=0.01,
        max_value=0.99,
        required=False,
        help_text="Sequential: the accuracy of a worker to keep.",
    )
    alpha = serializers.FloatField(
        min_value=0.0001,
        max_value=0.5,
        required=False,
        help_text="Sequential: the most often a worker at ``good`` or better is restricted, over all their "
        "answers in the window.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        sequential = attrs["test"] == RuleTest.SEQUENTIAL
        required, refused = (
            (SEQUENTIAL_ONLY, MEAN_ONLY) if sequential else (("min_answers", *MEAN_ONLY), SEQUENTIAL_ONLY)
        )
        errors = {name: ["Required by this test."] for name in required if name not in attrs}
        errors |= {
            name: [f"Not a parameter of the {attrs['test']} test."] for name in refused if name in attrs
        }
        if errors:
            raise serializers.ValidationError(errors)
        attrs.setdefault("min_answers", 1)
        if attrs["min_answers"] > attrs["window"]:
            raise serializers.ValidationError({"min_answers": ["Cannot exceed the window."]})
        if sequential and attrs["bad"] >= attrs["good"]:
            raise serializers.ValidationError({"bad": ["Must be below good."]})
        return attrs


class MajorityAgreementParams(GoldAccuracyParams):
    """Agreement: ``window`` counts the worker's regular answers, ``min_answers`` the tasks compared
    (at least ``min_votes`` other answers). The mean test counts agreeing with (one of) the most
    common other answers. The sequential test weighs each comparison by how sure the other answers,
    weighted by their authors' accuracy on control tasks, make the truth: then a worker's chance of
    agreeing is what their accuracy implies, and ``good``/``bad`` are accuracies, as for gold.
    """

    min_votes = serializers.IntegerField(
        min_value=1, max_value=100, default=2, help_text="Other answers a task needs to have a majority."
    )


class FastResponsesParams(_Window):
    count = serializers.IntegerField(min_value=1, max_value=MAX_WINDOW)
    seconds = serializers.FloatField(min_value=0.1, max_value=3600)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["count"] > attrs["window"]:
            raise serializers.ValidationError({"count": ["Cannot exceed the window."]})
        return attrs


class SkipsInRowParams(serializers.Serializer):
    count = serializers.IntegerField(min_value=1, max_value=MAX_WINDOW)


PARAMS = {
    RuleKind.GOLD_ACCURACY: GoldAccuracyParams,
    RuleKind.FAST_RESPONSES: FastResponsesParams,
    RuleKind.SKIPS_IN_ROW: SkipsInRowParams,
    RuleKind.MAJORITY_AGREEMENT: MajorityAgreementParams,
}


class ActionSerializer(serializers.Serializer):
    scope = serializers.ChoiceField(choices=RestrictionScope.choices, help_text="Not platform: admins only.")
    duration_hours = serializers.IntegerField(
        min_value=1, max_value=MAX_DURATION_HOURS, allow_null=True, help_text="null: permanent."
    )
    reject_pending = serializers.BooleanField(
        default=False,
        help_text="Also reject the worker's answers in this batch still under review (their tasks "
        "take a new answer) and take back the leases they hold there.",
    )

    def validate_scope(self, value: str) -> str:
        if value == RestrictionScope.PLATFORM:
            raise serializers.ValidationError("Rules restrict at batch, project or requester scope.")
        return value


class RuleSerializer(serializers.Serializer):
    """A QC rule as the requester writes it; unknown keys are refused so typos never pass."""

    id = serializers.IntegerField(read_only=True)
    kind = serializers.ChoiceField(choices=RuleKind.choices)
    params = serializers.JSONField(
        help_text='By kind. gold_accuracy: window, then test "mean" (default: min_answers, threshold) or '
        '"sequential" (bad, good, alpha, optional min_answers). majority_agreement: the same plus '
        "min_votes. fast_responses: window, count, seconds. skips_in_row: count."
    )
    action = ActionSerializer()
    is_active = serializers.BooleanField(default=True)
    created_at = serializers.DateTimeField(read_only=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        params = attrs["params"]
        schema = PARAMS[attrs["kind"]]
        if not isinstance(params, dict):
            raise serializers.ValidationError({"params": ["Must be a JSON object."]})
        unknown = set(params) - set(schema().fields)
        nested = schema(data=params)
        valid = nested.is_valid()
        if unknown or not valid:
            errors = dict(nested.errors)
            if unknown:
                errors["unknown"] = [f"Unknown key(s): {', '.join(sorted(unknown))}."]
            raise serializers.ValidationError({"params": errors})
        attrs["params"] = dict(nested.validated_data)
        unknown_action = set(self.initial_data.get("action") or {}) - set(ActionSerializer().fields)
        if unknown_action:
            raise serializers.ValidationError(
                {"action": [f"Unknown key(s): {', '.join(sorted(unknown_action))}."]}
            )
        attrs["action"] = dict(attrs["action"])
        return attrs


# --- evaluation ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Firing:
    reason: str


def _mine(worker_id: int, batch_id: int, since: datetime | None) -> Any:
    qs = Assignment.objects.filter(worker_id=worker_id, batch_id=batch_id)
    return qs.filter(claimed_at__gt=since) if since else qs


def _log_likelihood_ratio(p: dict[str, Any], right: int, total: int) -> float:
    """log P(outcomes | accuracy ``bad``) / P(outcomes | accuracy ``good``) for independent answers."""
    return right * math.log(p["bad"] / p["good"]) + (total - right) * math.log(
        (1 - p["bad"]) / (1 - p["good"])
    )


def _below_bar(p: dict[str, Any], right: int, total: int) -> bool:
    """Whether ``right`` of ``total`` is below the rule's bar under its test.

    Sequential: the likelihood ratio of ``bad`` to ``good`` is, for a worker whose accuracy is
    ``good`` or better, a nonnegative supermartingale starting at 1, so by Ville's inequality it
    ever reaches ``1 / alpha`` with probability at most ``alpha``, however many answers the worker
    gives and however often the rule looks (exact while the window holds all of them). A worker
    at ``bad`` drifts up to it, in about ``log(1 / alpha) / KL(bad, good)`` answers on average.
    """
    if total < p["min_answers"]:
        return False
    if p.get("test") == RuleTest.SEQUENTIAL:
        return _log_likelihood_ratio(p, right, total) >= math.log(1 / p["alpha"])
    return right / total < p["threshold"]


def _bar(p: dict[str, Any]) -> str:
    if p.get("test") == RuleTest.SEQUENTIAL:
        return (
            f"at least {1 / p['alpha']:.0f} times likelier from a worker at {p['bad']:.0%} "
            f"than at the required {p['good']:.0%}"
        )
    return f"below the required {p['threshold']:.0%}"


def _gold_accuracy(p: dict[str, Any], worker_id: int, batch: Batch, since: datetime | None) -> Firing | None:
    scored = list(
        _mine(worker_id, batch.pk, since)
        .filter(gold_correct__isnull=False)
        .order_by("-submitted_at", "-id")
        .values_list("gold_correct", flat=True)[: p["window"]]
    )
    right = sum(scored)
    if _below_bar(p, right, len(scored)):
        # No counts or percentages: they would change with this very answer and tell the worker
        # which of their answers were control tasks, sooner than work/me's lagged figure does.
        return Firing(f"Your accuracy on this batch's control tasks is {_bar(p)}.")
    return None


def _fast_responses(p: dict[str, Any], worker_id: int, batch: Batch, since: datetime | None) -> Firing | None:
    rows = list(
        _mine(worker_id, batch.pk, since)
        .filter(submitted_at__isnull=False)
        .order_by("-submitted_at", "-id")
        .values_list("claimed_at", "submitted_at")[: p["window"] + 1]
    )
    rows.reverse()
    # A claim of many tasks starts every clock at once: time each answer from the later of its
    # claim and the previous answer, i.e. the time actually spent on it.
    durations = [
        (sub - max(claimed, rows[i - 1][1] if i else claimed)).total_seconds()
        for i, (claimed, sub) in enumerate(rows)
    ][-p["window"] :]
    fast = sum(d < p["seconds"] for d in durations)
    if fast >= p["count"]:
        return Firing(f"{fast} of your last {len(durations)} answers took less than {p['seconds']:g} s each.")
    return None


def _skips_in_row(p: dict[str, Any], worker_id: int, batch: Batch, since: datetime | None) -> Firing | None:
    last = list(
        _mine(worker_id, batch.pk, since)
        .filter(status__in=[AssignmentStatus.SKIPPED, *ANSWERED, AssignmentStatus.REJECTED])
        .annotate(done_at=Coalesce("submitted_at", "ended_at"))
        .order_by(F("done_at").desc(), "-id")
        .values_list("status", flat=True)[: p["count"]]
    )
    if len(last) == p["count"] and all(s == AssignmentStatus.SKIPPED for s in last):
        return Firing(f"You skipped {p['count']} tasks in a row.")
    return None


def _key(answer: Any) -> str:
    return json.dumps(answer, sort_keys=True)


def _classes(batch: Batch, p: dict[str, Any], seen: int) -> int:
    """How many answers are possible: the answer schema's ``enum`` if it has one, else chance level
    ``1 / bad`` read back (the sequential test's ``bad`` is a random clicker's accuracy); never
    fewer than the distinct answers seen."""
    schema = batch.project.answer_schema
    enum = schema.get("enum") if isinstance(schema, dict) else None
    k = len(enum) if isinstance(enum, list) and enum else round(1 / p["bad"])
    return max(2, k, seen)


def _peer_posterior(answer: str, votes: list[tuple[str, float]], k: int) -> float:
    """P(the truth is ``answer``) given the other answers ``votes`` (answer, author's reliability)
    under the one-coin model: an author is right with probability = their reliability, else picks
    one of the ``k - 1`` other answers uniformly; the truth is a priori uniform over ``k`` answers.
    """
    log_w: dict[str, float] = {}
    log_none = 0.0  # the weight of an answer nobody gave
    for _, r in votes:
        log_none += math.log((1 - r) / (k - 1))
    for candidate in sorted({answer, *(a for a, _ in votes)}):  # sorted: the same sums every run
        log_w[candidate] = sum(
            math.log(r) if a == candidate else math.log((1 - r) / (k - 1)) for a, r in votes
        )
    top = max(log_w.values())
    z = sum(math.exp(v - top) for v in log_w.values()) + (k - len(log_w)) * math.exp(log_none - top)
    return math.exp(log_w[answer] - top) / z


def _agreement_llr(p: dict[str, Any], truth_posterior: float, k: int) -> float:
    """log P(this answer | accuracy ``bad``) / P(this answer | accuracy ``good``), the truth being
    the answer with probability ``truth_posterior``: a worker at accuracy ``h`` gives an answer
    with probability ``h * pi + (1 - h) / (k - 1) * (1 - pi)``."""

    def chance(h: float) -> float:
        return h * truth_posterior + (1 - h) / (k - 1) * (1 - truth_posterior)

    return math.log(chance(p["bad"]) / chance(p["good"]))


def _majority_agreement(
    p: dict[str, Any], worker_id: int, batch: Batch, since: datetime | None
) -> Firing | None:
    mine = list(
        _mine(worker_id, batch.pk, since)
        .filter(is_gold=False, status__in=ANSWERED)
        .order_by("-submitted_at", "-id")
        .values_list("task_id", "answer")[: p["window"]]
    )
    if len(mine) < p["min_answers"]:
        return None
    others: dict[int, list[tuple[str, int]]] = {}
    for task_id, author, answer in (
        Assignment.objects.filter(task_id__in=[t for t, _ in mine], status__in=ANSWERED)
        .exclude(worker_id=worker_id)
        .values_list("task_id", "worker_id", "answer")
    ):
        others.setdefault(task_id, []).append((_key(answer), author))
    mine = [(t, _key(a)) for t, a in mine if len(others.get(t, ())) >= p["min_votes"]]
    if not mine:
        return None
    agreed = 0
    for task_id, answer in mine:
        counts = Counter(a for a, _ in others[task_id])
        agreed += counts[answer] == max(counts.values())
    if p.get("test") != RuleTest.SEQUENTIAL:
        # The mean test: the share of compared tasks where the answer is (one of) the most common.
        if _below_bar(p, agreed, len(mine)):
            return Firing(
                f"Your answers agreed with the majority on {agreed / len(mine):.0%} of {len(mine)} tasks, "
                f"{_bar(p)}."
            )
        return None
    # The sequential test weighs each comparison by how sure the others make the truth: their
    # answers weighted by their accuracy on control tasks (one-coin model, each estimate centred on
    # the crowd's pooled control accuracy), so two agreeing workers with a strong gold record count
    # for much, a split or two unknowns for little. A worker right with probability ``good`` then
    # gives each answer with the probability the test assumes (when those estimates are
    # calibrated), which is what the ``alpha`` bound needs; a plain "agrees with the majority" rate
    # is lower than the worker's accuracy, majorities being wrong at times.
    authors = {author for votes in others.values() for _, author in votes}
    gold = {
        author: (correct, total)
        for author, correct, total in Reliability.objects.filter(
            worker_id__in=authors, project_id=batch.project_id
        ).values_list("worker_id", "gold_correct", "gold_total")
    }
    k = _classes(batch, p, len({a for votes in others.values() for a, _ in votes} | {a for _, a in mine}))
    # Each author's accuracy is centred on the crowd's, not on the platform prior: in a crowd
    # worse than 0.8 that prior makes majorities look surer than they are.
    prior = crowd_accuracy(batch.project_id, exclude=worker_id)
    floor, ceiling = 1 / k + 1e-6, 0.99  # below chance a vote says nothing; nobody is certain
    reliability = {
        author: min(ceiling, max(floor, posterior_mean(*gold.get(author, (0, 0)), prior_mean=prior)))
        for author in authors
    }
    llr = sum(
        _agreement_llr(
            p,
            _peer_posterior(answer, [(a, reliability[author]) for a, author in others[task_id]], k),
            k,
        )
        for task_id, answer in mine
    )
    if len(mine) >= p["min_answers"] and llr >= math.log(1 / p["alpha"]):
        return Firing(
            f"Your answers agreed with the majority on {agreed / len(mine):.0%} of {len(mine)} tasks; "
            f"weighing the other answers by their authors' accuracy on control tasks, that is {_bar(p)}."
        )
    return None


CHECKS = {
    RuleKind.GOLD_ACCURACY: _gold_accuracy,
    RuleKind.FAST_RESPONSES: _fast_responses,
    RuleKind.SKIPS_IN_ROW: _skips_in_row,
    RuleKind.MAJORITY_AGREEMENT: _majority_agreement,
}


def batch_has_rules(batch_id: int) -> bool:
    return QualityRule.objects.filter(batch_id=batch_id, is_active=True).exists()


def rules_judge_peers(*, batch_id: int) -> bool:
    """Whether a task that got its answers should have its answerers' rules evaluated again: the
    batch has an active agreement rule (``rules_evaluate_task_peers``)."""
    return QualityRule.objects.filter(
        batch_id=batch_id, is_active=True, kind=RuleKind.MAJORITY_AGREEMENT
    ).exists()


def rules_evaluate_task_peers(*, task_id: int, batch_id: int) -> None:
    """Judge the answerers of a task that has just got its answers (after its consensus).

    The majority-agreement rule can only compare an answer once the task's other answers are in;
    evaluated only at each worker's own submit, a fast worker who answers tasks first would meet
    few comparisons, and with claims spread over a batch many tasks fill up long after. So when a
    task reaches its overlap, every answerer's rules are evaluated again (idempotent; the last one
    to answer was also judged at their submit), as Toloka's majority-vote control runs when a task
    is complete. Call it only where ``rules_judge_peers`` says so.
    """
    peers = (
        Assignment.objects.filter(task_id=task_id, status__in=ANSWERED)
        .values_list("worker_id", flat=True)
        .distinct()
    )
    for peer in sorted(peers):
        rules_evaluate(worker_id=peer, batch_id=batch_id)


def rules_evaluate(*, worker_id: int, batch_id: int, now: datetime | None = None) -> list[Restriction]:
    """Evaluate the batch's active rules for one worker; returns the restrictions created.

    Idempotent: a rule with an active restriction of this worker is skipped, and the worker row
    lock makes concurrent evaluations for one worker run one at a time.
    """
    rules = list(QualityRule.objects.filter(batch_id=batch_id, is_active=True))
    if not rules:
        return []
    now = now or timezone.now()
    batch = Batch.objects.select_related("project").get(pk=batch_id)
    created: list[Restriction] = []
    with transaction.atomic():
        Worker.objects.select_for_update().filter(pk=worker_id).values_list("id").first()
        for rule in rules:
            previous = (
                Restriction.objects.filter(worker_id=worker_id, rule=rule).order_by("-created_at").first()
            )
            if previous is not None and Restriction.objects.filter(active_q(now), pk=previous.pk).exists():
                continue
            firing = CHECKS[rule.kind](
                rule.params, worker_id, batch, previous.created_at if previous else None
            )
            if firing is None:
                continue
            hours = rule.action.get("duration_hours")
            created.append(
                restriction_create(
                    worker_id=worker_id,
                    scope=rule.action["scope"],
                    batch=batch,
                    reason=firing.reason,
                    created_by=Actor.RULE,
                    duration=None if hours is None else timedelta(hours=hours),
                    now=now,
                    rule_id=rule.pk,
                )
            )
            if rule.action.get("reject_pending"):
                pending = list(
                    Assignment.objects.select_for_update()
                    .filter(worker_id=worker_id, batch_id=batch_id, status=AssignmentStatus.SUBMITTED)
                    .order_by("id")
                )
                pending = [
                    a for a in pending if AssignmentStatus.REJECTED in ASSIGNMENT_TRANSITIONS[a.status]
                ]
                if pending:
                    verdict_apply(
                        pending,
                        target=AssignmentStatus.REJECTED,
                        actor=Actor.RULE,
                        now=now,
                        reason=f"Rejected by a quality rule: {firing.reason}",
                        rule_id=rule.pk,
                    )
                # Leases still out would let the answers in after the verdict: hand them back too.
                leases_release(
                    batch_id=batch_id,
                    worker_id=worker_id,
                    now=now,
                    actor=Actor.RULE,
                    reason=f"Released by a quality rule: {firing.reason}",
                    rule_id=rule.pk,
                )
    return created
